package sdk

import (
	"log/slog"
	"testing"
	"time"
)

// The host view reads the machine's CPU and memory: memory in use is never
// zero on a running host, and CPU is a percentage once primed.
func TestHostSampler(t *testing.T) {
	s := &hostSampler{}
	s.sample()
	end := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(end) { // keep a CPU busy for a moment
	}
	cpu, mem := s.sample()
	if mem <= 0 || mem > 100 || cpu < 0 || cpu > 100 {
		t.Fatalf("host sample cpu %v mem %v", cpu, mem)
	}
	c, err := Connect(t.Context(), unreachable, "checkout", "c-1", WithLoadView(HostLoad), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.cfg.sampler.(*hostSampler); !ok {
		t.Fatalf("sampler %T, want the host view", c.cfg.sampler)
	}
	if _, err := Connect(t.Context(), unreachable, "checkout", "c-1", WithLoadView(9)); err == nil {
		t.Fatal("an unknown load view was accepted")
	}
}
