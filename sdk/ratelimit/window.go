package ratelimit

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/brownout-io/brownout/sdk/component"
	"github.com/brownout-io/brownout/sdk/resilience/clock"
)

// MaxWindowLimit is the largest limit a SlidingWindow accepts.
const MaxWindowLimit = 1<<countBits - 1

const (
	countBits = 20
	countMask = 1<<countBits - 1
	idxBits   = 64 - 2*countBits
	idxMask   = 1<<idxBits - 1
)

// SlidingWindow is the sliding-window counter (Cloudflare's, Redis cell's
// "approximate" mode): an approximation of "limit events per window". The
// estimate at time t is the count of the current fixed window plus the
// previous window's count weighted by the fraction of it that lies within
// (t-Window, t], which assumes the previous window's events were spread
// evenly. It never admits more than limit events in one fixed window, but
// events bunched at the end of one window and the start of the next can
// put up to 2×limit−1 events in some trailing interval of length Window
// (a fixed window allows 2×limit). Use SlidingLog where the bound must be
// exact.
//
// Its state (window index and both counts) is packed into one uint64 and
// updated with compare-and-swap. The zero value is not usable; create one
// with NewSlidingWindow.
type SlidingWindow struct {
	state    atomic.Uint64
	_        [56]byte
	window   int64
	limit    int
	clk      clock.Clock
	rejected counter
}

// NewSlidingWindow returns a limiter admitting limit events per window. It
// panics if window is not positive or limit is outside [0, MaxWindowLimit].
func NewSlidingWindow(limit int, window time.Duration, opts ...Option) *SlidingWindow {
	if window <= 0 || limit < 0 || limit > MaxWindowLimit {
		panic(fmt.Sprintf("ratelimit: invalid sliding window (limit %d, window %v)", limit, window))
	}
	var o options
	for _, f := range opts {
		f(&o)
	}
	s := &SlidingWindow{window: int64(window), limit: limit, clk: o.clock}
	// Start in the current window: a reading older than construction is
	// then stale and judged conservatively.
	w, _ := s.index(s.now())
	s.state.Store(pack(w, 0, 0))
	return s
}

func (s *SlidingWindow) now() int64 {
	if s.clk != nil {
		return s.clk.Nanotime()
	}
	return clock.Coarse()
}

func pack(idx int64, prev, cur uint64) uint64 {
	return uint64(idx)&idxMask<<(2*countBits) | prev<<countBits | cur
}

// index returns the fixed-window index of now and the offset into it.
func (s *SlidingWindow) index(now int64) (int64, int64) {
	w := now / s.window
	off := now - w*s.window
	if off < 0 {
		w--
		off += s.window
	}
	return w, off
}

// view returns the window index, counts and offset the estimate at now is
// based on. A stale reading (before the stored window) is judged at the
// start of the stored window, which weighs the previous window fully and so
// never admits more than a fresh reading would.
func (s *SlidingWindow) view(st uint64, now int64) (idx int64, prev, cur uint64, off int64) {
	w, off := s.index(now)
	sidx := int64(st >> (2 * countBits))
	prev, cur = st>>countBits&countMask, st&countMask
	d := (w - sidx) & idxMask
	switch {
	case d == 0:
	case d == 1:
		prev, cur = cur, 0
	case d < 1<<(idxBits-1):
		prev, cur = 0, 0
	default: // stale reading
		// Keep the stored window; sidx holds only the low bits of its
		// index, so rebuild the full index from w.
		w += (sidx - w) & idxMask
		off = 0
	}
	return w, prev, cur, off
}

func (s *SlidingWindow) estimate(prev, cur uint64, off int64) float64 {
	return float64(prev)*float64(s.window-off)/float64(s.window) + float64(cur)
}

// Allow is AllowN(1).
func (s *SlidingWindow) Allow() bool { return s.AllowN(1) }

// AllowN reports whether n events may happen now and counts them if so.
func (s *SlidingWindow) AllowN(n int) bool {
	if n <= 0 {
		return true
	}
	now := s.now()
	for {
		st := s.state.Load()
		w, prev, cur, off := s.view(st, now)
		if s.estimate(prev, cur, off)+float64(n) > float64(s.limit) {
			s.rejected.inc()
			return false
		}
		if s.state.CompareAndSwap(st, pack(w, prev, cur+uint64(n))) {
			return true
		}
	}
}

// Count returns the estimated number of events in the trailing window.
func (s *SlidingWindow) Count() float64 {
	_, prev, cur, off := s.view(s.state.Load(), s.now())
	return s.estimate(prev, cur, off)
}

// Rejected returns how many calls have been refused.
func (s *SlidingWindow) Rejected() uint64 { return s.rejected.load() }

// ComponentState implements component.Reporter: kind "ratelimit" with the
// gauges "count", "limit" and the counter "rejected".
func (s *SlidingWindow) ComponentState() component.State {
	return component.State{
		Kind: "ratelimit",
		Metrics: map[string]float64{
			"count":    s.Count(),
			"limit":    float64(s.limit),
			"rejected": float64(s.rejected.load()),
		},
	}
}
