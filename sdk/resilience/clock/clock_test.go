package clock

import (
	"testing"
	"time"
)

func TestCoarseTracksPrecise(t *testing.T) {
	c := Coarse()
	p := Nanotime()
	if c > p {
		t.Fatalf("coarse %d ahead of precise %d", c, p)
	}
	deadline := time.Now().Add(5 * time.Second)
	for Coarse() < p {
		if time.Now().After(deadline) {
			t.Fatal("coarse clock did not advance")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestManual(t *testing.T) {
	m := NewManual(time.Second)
	if m.Nanotime() != int64(time.Second) {
		t.Fatal("start")
	}
	m.Advance(-time.Millisecond)
	if m.Nanotime() != int64(999*time.Millisecond) {
		t.Fatal("advance")
	}
	if Reading(Time(12345)) != 12345 {
		t.Fatal("round trip")
	}
}

func BenchmarkNanotime(b *testing.B) {
	for i := 0; i < b.N; i++ {
		_ = Nanotime()
	}
}

func BenchmarkCoarse(b *testing.B) {
	for i := 0; i < b.N; i++ {
		_ = Coarse()
	}
}

// The refresher stops after about a second without readers and restarts on
// the next read, without the reading going backwards.
func TestCoarseStopsWhenIdleAndRestarts(t *testing.T) {
	before := Coarse()
	deadline := time.Now().Add(10 * time.Second)
	for coarse.flags.Load()&running != 0 {
		if time.Now().After(deadline) {
			t.Fatal("refresher did not stop while idle")
		}
		time.Sleep(50 * time.Millisecond)
	}
	after := Coarse()
	if after < before {
		t.Fatalf("reading went back from %d to %d", before, after)
	}
	if coarse.flags.Load()&running == 0 {
		t.Fatal("refresher not restarted by a read")
	}
}
