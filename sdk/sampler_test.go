//go:build linux

package sdk

import (
	"testing"
	"time"
)

func TestProcessSampler(t *testing.T) {
	s := newProcessSampler()
	s.sample()
	// Burn CPU for a while so that the next sample sees it.
	deadline := time.Now().Add(200 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	cpu, mem := s.sample()
	if cpu <= 0 || cpu > 100 {
		t.Errorf("cpu = %v, want (0, 100] after a busy loop", cpu)
	}
	if mem <= 0 || mem > 100 {
		t.Errorf("mem = %v, want (0, 100]", mem)
	}
	_ = x
}
