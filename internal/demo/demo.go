// Package demo simulates a few services whose load rises and falls, so
// that a first run of the controller shows levels moving, overrides and
// history. It feeds reports straight into the controller, exactly as a
// real report over the API would arrive.
package demo

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/brownout-io/brownout/internal/health"
)

// Ingester takes reports.
type Ingester interface {
	Ingest(ctx context.Context, r health.Report) error
}

type profile struct {
	name      string
	instances int
	base      float64       // mean CPU
	amp       float64       // swing
	period    time.Duration // of the swing
	mem       float64
	errBase   float64
	rps       int64
}

var profiles = []profile{
	{name: "checkout", instances: 3, base: 62, amp: 30, period: 6 * time.Minute, mem: 60, errBase: 0.01, rps: 400},
	{name: "search", instances: 4, base: 45, amp: 20, period: 9 * time.Minute, mem: 55, errBase: 0.005, rps: 900},
	{name: "recommendations", instances: 2, base: 70, amp: 25, period: 4 * time.Minute, mem: 78, errBase: 0.02, rps: 250},
	{name: "payments", instances: 2, base: 35, amp: 10, period: 12 * time.Minute, mem: 50, errBase: 0.002, rps: 120},
}

// Run reports for every simulated instance every interval until ctx ends.
func Run(ctx context.Context, ing Ingester, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	start := time.Now()
	rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), 7))
	t := time.NewTicker(interval)
	defer t.Stop()
	log.Info("demo services running", "services", len(profiles))
	for {
		now := time.Now()
		el := now.Sub(start)
		for _, p := range profiles {
			phase := 2 * math.Pi * float64(el) / float64(p.period)
			load := p.base + p.amp*math.Sin(phase)
			// An error burst for a minute every so often.
			burst := math.Sin(phase*0.37+1) > 0.93
			for i := 0; i < p.instances; i++ {
				cpu := clamp(load+rng.NormFloat64()*4+float64(i)*2, 1, 100)
				mem := clamp(p.mem+load/10+rng.NormFloat64()*2, 1, 100)
				req := p.rps*int64(interval/time.Second) + rng.Int64N(50)
				rate := p.errBase
				if burst {
					rate += 0.12
				}
				errs := int64(float64(req) * clamp(rate+rng.NormFloat64()*0.003, 0, 1))
				r := health.Report{
					Service: p.name, Instance: fmt.Sprintf("%s-%d", p.name, i+1),
					CPUPercent: &cpu, MemoryPercent: &mem, Requests: req, Errors: errs,
				}
				if err := ing.Ingest(ctx, r); err != nil && ctx.Err() == nil {
					log.Warn("demo report refused", "service", p.name, "err", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }
