package resilience

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/sony/gobreaker/v2"

	"github.com/brownout-io/brownout/sdk/breaker"
	"github.com/brownout-io/brownout/sdk/resilience/clock"
)

var errRef = errors.New("boom")

func ourCall(b *breaker.Breaker, failed bool) {
	tok, err := b.Allow()
	if err != nil {
		return
	}
	if failed {
		tok.Done(errRef)
	} else {
		tok.Done(nil)
	}
}

// The consecutive-failures policy against gobreaker's (its default trip
// policy, with the threshold made explicit): on random traces both open at
// the same call.
func TestBreakerConsecutiveMatchesGobreaker(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for trial := 0; trial < 200; trial++ {
		k := 1 + rng.IntN(8)
		pFail := rng.Float64()
		ours := breaker.New(breaker.Config{ConsecutiveFailures: k, WindowSize: 1 << 20, MinimumCalls: 1 << 20, Clock: clock.NewManual(0)})
		theirs := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(k) },
		})
		for i := 0; i < 400; i++ {
			failed := rng.Float64() < pFail
			ourCall(ours, failed)
			_, _ = theirs.Execute(func() (struct{}, error) {
				if failed {
					return struct{}{}, errRef
				}
				return struct{}{}, nil
			})
			gotOpen, wantOpen := ours.State() == breaker.Open, theirs.State() == gobreaker.StateOpen
			if gotOpen != wantOpen {
				t.Fatalf("trial %d (k=%d) call %d: open=%v, gobreaker %v", trial, k, i, gotOpen, wantOpen)
			}
			if gotOpen {
				break
			}
		}
	}
}

// The count window against failsafe-go's count-based breaker ("k of the
// last n executions failed"): after n successes fill both windows, on
// random traces both open at the same call. (Before its window is full,
// failsafe-go opens on k failures however few calls it has seen; ours waits
// for MinimumCalls, here n.)
func TestBreakerCountWindowMatchesFailsafe(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(30)
		k := 1 + rng.IntN(n)
		pFail := rng.Float64()
		ours := breaker.New(breaker.Config{WindowSize: n, MinimumCalls: n, FailureRateThreshold: float64(k) / float64(n), Clock: clock.NewManual(0)})
		cb := circuitbreaker.NewBuilder[any]().WithFailureThresholdRatio(uint(k), uint(n)).Build()
		exec := failsafe.With[any](cb)
		for i := 0; i < n; i++ {
			ourCall(ours, false)
			_ = exec.Run(func() error { return nil })
		}
		for i := 0; i < 400; i++ {
			failed := rng.Float64() < pFail
			ourCall(ours, failed)
			_ = exec.Run(func() error {
				if failed {
					return errRef
				}
				return nil
			})
			gotOpen, wantOpen := ours.State() == breaker.Open, cb.IsOpen()
			if gotOpen != wantOpen {
				t.Fatalf("trial %d (%d of %d) call %d: open=%v, failsafe-go %v", trial, k, n, i, gotOpen, wantOpen)
			}
			if gotOpen {
				break
			}
		}
	}
}
