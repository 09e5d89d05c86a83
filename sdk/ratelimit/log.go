package ratelimit

import (
	"fmt"
	"sync"
	"time"

	"github.com/brownout-io/brownout/sdk/component"
	"github.com/brownout-io/brownout/sdk/resilience/clock"
)

// MaxLogLimit is the largest limit a SlidingLog accepts: it keeps one
// timestamp (8 bytes) per admitted event of the last window.
const MaxLogLimit = 1 << 20

// SlidingLog admits at most limit events in any interval of length window,
// exactly: it keeps the timestamps of the last limit admitted events in a
// ring, and admits n more only if the n-th oldest of them has left the
// window. It takes a mutex per call; use SlidingWindow where an
// approximation within 2×limit is good enough and the call is hot.
type SlidingLog struct {
	window int64
	limit  int
	clk    clock.Clock

	mu       sync.Mutex
	ring     []int64 // admission times, oldest at head
	head     int
	n        int   // timestamps held (≤ limit)
	latest   int64 // latest reading seen: time never goes back
	rejected counter
}

// NewSlidingLog returns an exact limiter of limit events per window. It
// panics if window is not positive or limit is outside [0, MaxLogLimit].
func NewSlidingLog(limit int, window time.Duration, opts ...Option) *SlidingLog {
	if window <= 0 || limit < 0 || limit > MaxLogLimit {
		panic(fmt.Sprintf("ratelimit: invalid sliding log (limit %d, window %v)", limit, window))
	}
	var o options
	for _, f := range opts {
		f(&o)
	}
	return &SlidingLog{window: int64(window), limit: limit, clk: o.clock, ring: make([]int64, limit)}
}

func (l *SlidingLog) now() int64 {
	if l.clk != nil {
		return l.clk.Nanotime()
	}
	return clock.Coarse()
}

// Allow is AllowN(1).
func (l *SlidingLog) Allow() bool { return l.AllowN(1) }

// AllowN reports whether n events may happen now and records them if so.
func (l *SlidingLog) AllowN(n int) bool {
	if n <= 0 {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	// A stale reading is judged at the latest time seen, which never
	// admits more than a fresh one would.
	now = max(now, l.latest)
	l.latest = now
	l.expireLocked(now)
	if n > l.limit-l.n {
		l.rejected.inc()
		return false
	}
	for i := 0; i < n; i++ {
		l.ring[(l.head+l.n)%l.limit] = now
		l.n++
	}
	return true
}

// expireLocked drops the timestamps outside (now-window, now].
func (l *SlidingLog) expireLocked(now int64) {
	for l.n > 0 && l.ring[l.head] <= now-l.window {
		l.head = (l.head + 1) % l.limit
		l.n--
	}
}

// Count returns the number of events admitted in the trailing window.
func (l *SlidingLog) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireLocked(max(l.now(), l.latest))
	return l.n
}

// Rejected returns how many calls have been refused.
func (l *SlidingLog) Rejected() uint64 { return l.rejected.load() }

// ComponentState implements component.Reporter: kind "ratelimit" with the
// gauges "count", "limit" and the counter "rejected".
func (l *SlidingLog) ComponentState() component.State {
	return component.State{Kind: "ratelimit", Metrics: map[string]float64{
		"count": float64(l.Count()), "limit": float64(l.limit), "rejected": float64(l.rejected.load()),
	}}
}
