package ui

import (
	"strings"
	"testing"
	"time"
)

// TestChartLineContinuous: points one minute apart (a store answering from
// rollups) on a chart asked for a 5 s step draw one line, and a real hole
// in the data still breaks it.
func TestChartLineContinuous(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var s Series
	for i := range 10 {
		s.At = append(s.At, t0.Add(time.Duration(i)*time.Minute))
		s.V = append(s.V, float64(i))
	}
	spec := ChartSpec{From: t0, To: t0.Add(30 * time.Minute), Step: 5 * time.Second, YMax: 10, Width: 600, Height: 120, Format: func(float64) string { return "" }}
	if got := strings.Count(Build(s, spec).Path, "M"); got != 1 {
		t.Errorf("minute-spaced points: %d line segments, want 1", got)
	}
	// Ten minutes without data: two lines.
	s.At = append(s.At, t0.Add(20*time.Minute), t0.Add(21*time.Minute))
	s.V = append(s.V, 1, 2)
	if got := strings.Count(Build(s, spec).Path, "M"); got != 2 {
		t.Errorf("with a 10-minute hole: %d line segments, want 2", got)
	}
}
