package ratelimit

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/brownout-io/brownout/sdk/resilience/clock"
)

// maxInAnyWindow is the most admitted events in any interval (t-w, t].
func maxInAnyWindow(times []int64, w int64) int {
	most, lo := 0, 0
	for hi := range times {
		for times[lo] <= times[hi]-w {
			lo++
		}
		most = max(most, hi-lo+1)
	}
	return most
}

// Random traces through SlidingLog and a reference model (every admitted
// timestamp, counted over the trailing window) decide every call alike;
// SlidingWindow never exceeds its documented bound of 2×limit−1.
func TestSlidingLimitersAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for trial := 0; trial < 200; trial++ {
		limit := 1 + rng.IntN(20)
		window := time.Duration(1+rng.IntN(1000)) * time.Millisecond
		clk := clock.NewManual(time.Hour)
		exact := NewSlidingLog(limit, window, WithClock(clk))
		approx := NewSlidingWindow(limit, window, WithClock(clk))
		var ref, exactTimes, approxTimes []int64
		for i := 0; i < 2000; i++ {
			clk.Advance(time.Duration(rng.Int64N(int64(window) / int64(limit) * 2)))
			now := clk.Nanotime()
			n := 1 + rng.IntN(2)
			in := 0
			for _, ts := range ref {
				if ts > now-int64(window) {
					in++
				}
			}
			want := in+n <= limit
			if got := exact.AllowN(n); got != want {
				t.Fatalf("trial %d (limit %d, window %v) call %d: SlidingLog.AllowN(%d) = %v, reference %v (%d in window)",
					trial, limit, window, i, n, got, want, in)
			}
			if want {
				for j := 0; j < n; j++ {
					ref = append(ref, now)
					exactTimes = append(exactTimes, now)
				}
			}
			if approx.AllowN(n) {
				for j := 0; j < n; j++ {
					approxTimes = append(approxTimes, now)
				}
			}
		}
		if got := maxInAnyWindow(exactTimes, int64(window)); got > limit {
			t.Fatalf("SlidingLog admitted %d in one window, limit %d", got, limit)
		}
		if got := maxInAnyWindow(approxTimes, int64(window)); got > 2*limit-1 {
			t.Fatalf("SlidingWindow admitted %d in one window, documented bound %d", got, 2*limit-1)
		}
	}
}

// The SlidingWindow's approximation is real: 10 events at the end of one
// window and more at the start of the next exceed 10 in one second.
func TestSlidingWindowIsAnApproximation(t *testing.T) {
	clk := clock.NewManual(time.Hour)
	w := NewSlidingWindow(10, time.Second, WithClock(clk))
	l := NewSlidingLog(10, time.Second, WithClock(clk))
	clk.Advance(999 * time.Millisecond)
	var approxN, exactN int
	for i := 0; i < 10; i++ {
		if w.Allow() {
			approxN++
		}
		if l.Allow() {
			exactN++
		}
	}
	clk.Advance(500 * time.Millisecond) // the first 10 are 500ms old
	for i := 0; i < 10; i++ {
		if w.Allow() {
			approxN++
		}
		if l.Allow() {
			exactN++
		}
	}
	if exactN != 10 {
		t.Fatalf("SlidingLog admitted %d in one second, want 10", exactN)
	}
	if approxN <= 10 || approxN > 19 {
		t.Fatalf("SlidingWindow admitted %d in one second, want between 11 and 19", approxN)
	}
}
