package resilience

import (
	"math/rand/v2"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/brownout-io/brownout/sdk/ratelimit"
	"github.com/brownout-io/brownout/sdk/resilience/clock"
)

// TestTokenBucketMatchesXTimeRate drives both limiters with the same random
// sequence of clock moves and AllowN/ReserveN calls on a fake clock and
// requires the same decision for every call and the same reservation delay
// (to within a microsecond, the two differ only in float rounding).
//
// Clock moves are whole microseconds plus 1/3 µs so that no call lands
// exactly on a token boundary, where float rounding alone could flip the
// decision.
func TestTokenBucketMatchesXTimeRate(t *testing.T) {
	cases := []struct {
		r     float64
		burst int
	}{{1000, 10}, {3, 1}, {7.5, 4}, {250000, 100}, {0.5, 2}}
	for _, c := range cases {
		for seed := uint64(1); seed <= 5; seed++ {
			rng := rand.New(rand.NewPCG(seed, uint64(c.burst)))
			clk := clock.NewManual(time.Hour)
			ours := ratelimit.NewTokenBucket(ratelimit.Limit(c.r), c.burst, ratelimit.WithClock(clk))
			theirs := rate.NewLimiter(rate.Limit(c.r), c.burst)
			interval := time.Duration(float64(time.Second) / c.r)
			for i := 0; i < 3000; i++ {
				step := time.Duration(rng.Int64N(int64(2*interval)/1000+1))*time.Microsecond + time.Microsecond/3
				clk.Advance(step)
				now := clock.Time(clk.Nanotime())
				n := rng.IntN(c.burst + 2) // sometimes above burst
				if rng.IntN(4) == 0 {
					ro, rt := ours.ReserveN(n), theirs.ReserveN(now, n)
					if ro.OK() != rt.OK() {
						t.Fatalf("r=%v b=%d seed %d call %d: ReserveN(%d) ok %v vs x/time/rate %v", c.r, c.burst, seed, i, n, ro.OK(), rt.OK())
					}
					if ro.OK() {
						if d := ro.Delay() - rt.DelayFrom(now); d > time.Microsecond || d < -time.Microsecond {
							t.Fatalf("r=%v b=%d seed %d call %d: delay %v vs %v", c.r, c.burst, seed, i, ro.Delay(), rt.DelayFrom(now))
						}
					}
					continue
				}
				if got, want := ours.AllowN(n), theirs.AllowN(now, n); got != want {
					t.Fatalf("r=%v b=%d seed %d call %d: AllowN(%d) = %v, x/time/rate %v (tokens %.4f vs %.4f)",
						c.r, c.burst, seed, i, n, got, want, ours.Tokens(), theirs.TokensAt(now))
				}
			}
		}
	}
}

// TestStaleTimestampNeverOverGrants feeds both limiters a timestamp older
// than one already used, then a fresh one 100ms after the first grant: at
// 1 token/s and burst 1 only the first call may be granted. (The SDK's bucket
// never moves its state back in time, so a stale reading can only see fewer
// tokens.)
func TestStaleTimestampNeverOverGrants(t *testing.T) {
	start := time.Unix(1000, 0)
	clk := clock.NewManual(time.Hour)
	base := clk.Nanotime()
	at := func(d time.Duration) time.Time { clk.Set(base + int64(d)); return start.Add(d) }

	ours := ratelimit.NewTokenBucket(1, 1, ratelimit.WithClock(clk))
	theirs := rate.NewLimiter(1, 1)
	grantedOurs, grantedTheirs := 0, 0
	for _, d := range []time.Duration{10 * time.Second, 5 * time.Second /* stale */, 10*time.Second + 100*time.Millisecond} {
		now := at(d)
		if ours.Allow() {
			grantedOurs++
		}
		if theirs.AllowN(now, 1) {
			grantedTheirs++
		}
	}
	if grantedOurs != 1 || grantedTheirs != 1 {
		t.Fatalf("granted %d (x/time/rate %d) within 100ms at 1/s burst 1; want 1", grantedOurs, grantedTheirs)
	}
}
