package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/brownout-io/brownout/sdk/component"
	"github.com/brownout-io/brownout/sdk/resilience/clock"
)

// Limit is a rate in events per second.
type Limit float64

// Inf is the infinite rate: every event is allowed, whatever the burst.
const Inf = Limit(math.MaxFloat64)

// InfDuration is the delay reported for a reservation that can never be
// acted upon.
const InfDuration = time.Duration(math.MaxInt64)

// Every converts a minimum time between events into a Limit. Every(0) is Inf.
func Every(interval time.Duration) Limit {
	if interval <= 0 {
		return Inf
	}
	return 1 / Limit(interval.Seconds())
}

// Option configures a limiter.
type Option func(*options)

type options struct {
	clock clock.Clock
	batch int
}

// WithClock makes the limiter read c instead of the coarse monotonic clock.
// Use a *clock.Manual in tests.
func WithClock(c clock.Clock) Option { return func(o *options) { o.clock = c } }

// WithLocalBatch makes a TokenBucket hand out tokens to concurrent callers
// from small per-stripe leases of k tokens, so that goroutines on different
// CPUs mostly update different cache lines and Allow scales with CPUs
// instead of contending on one word.
//
// The price is exactness: leased tokens count as taken when leased, a lease
// is only taken while the bucket stays at least half full, and it expires
// unused after a millisecond. So a bucket near empty is judged exactly,
// but the limiter may admit up to 4×k events more than the exact bucket in
// a burst (and lose the tokens left in a lease when it expires, about k per
// stripe per millisecond).
// Use it for high-rate limiters (far above 1000/s) with bursts of at least
// 8×k; leave it off where x/time/rate's exact accounting matters. It affects
// Allow and AllowN(1) only. k ≤ 0 disables it; k is capped at 65535.
func WithLocalBatch(k int) Option { return func(o *options) { o.batch = min(k, 0xffff) } }

// lease is a stripe's batch of pre-taken tokens: the count in the low 16
// bits, the reading it was taken at (>> leaseShift) above.
type lease struct {
	v atomic.Int64
	_ [56]byte
}

const (
	leaseShift = 16
	leaseTTL   = int64(time.Millisecond)
)

// maxNs bounds durations computed from tokens so that sums never overflow.
const maxNs = math.MaxInt64 / 4

// params is an immutable configuration snapshot.
type params struct {
	limit    Limit
	burst    int
	inf      bool    // limit == Inf: everything allowed
	zero     bool    // limit <= 0: burst tokens, never refilled
	interval float64 // ns per token
	one      int64   // ns for one token
	burstNs  int64   // ns for burst tokens
}

func newParams(r Limit, b int) *params {
	p := &params{limit: r, burst: b}
	switch {
	case r == Inf:
		p.inf = true
	case r <= 0 || math.IsNaN(float64(r)):
		p.zero = true
	default:
		p.interval = 1e9 / float64(r)
		p.one = p.ns(1)
		p.burstNs = p.ns(b)
	}
	return p
}

// ns converts n tokens into nanoseconds, saturating.
func (p *params) ns(n int) int64 {
	f := float64(n) * p.interval
	if f >= maxNs {
		return maxNs
	}
	return int64(f)
}

func (p *params) cost(n int) int64 {
	if n == 1 {
		return p.one
	}
	return p.ns(n)
}

// TokenBucket is a token-bucket rate limiter. The zero value is not usable;
// create one with NewTokenBucket. All methods are safe for concurrent use
// and, except SetLimit and SetBurst, lock-free.
type TokenBucket struct {
	tat    atomic.Int64 // theoretical arrival time of the next token (finite rate)
	used   atomic.Int64 // tokens consumed (zero rate)
	_      [48]byte
	p      atomic.Pointer[params]
	clk    clock.Clock
	batch  int64
	leases *[4]lease // nil unless WithLocalBatch
	_      [24]byte  // keep the read-mostly fields above off the counters' lines

	rejected counter
	mu       sync.Mutex // serialises SetLimit / SetBurst
}

// NewTokenBucket returns a limiter that allows events at rate r with bursts
// of at most b events. The bucket starts full. A rate of Inf allows every
// event; a rate of 0 allows b events in total and then none.
func NewTokenBucket(r Limit, b int, opts ...Option) *TokenBucket {
	var o options
	for _, f := range opts {
		f(&o)
	}
	l := &TokenBucket{clk: o.clock}
	if o.batch > 0 {
		l.batch = int64(o.batch)
		l.leases = new([4]lease)
	}
	l.tat.Store(math.MinInt64 / 2)
	l.p.Store(newParams(r, b))
	return l
}

func (l *TokenBucket) now() int64 {
	if l.clk != nil {
		return l.clk.Nanotime()
	}
	return clock.Coarse()
}

// Limit returns the current rate.
func (l *TokenBucket) Limit() Limit { return l.p.Load().limit }

// Burst returns the current burst size.
func (l *TokenBucket) Burst() int { return l.p.Load().burst }

// Allow reports whether one event may happen now, consuming a token if so.
func (l *TokenBucket) Allow() bool { return l.AllowN(1) }

// AllowN reports whether n events may happen now, consuming n tokens if so.
// It never waits. AllowN(n) with n greater than the burst is always false
// unless the rate is Inf; AllowN(0) is always true.
func (l *TokenBucket) AllowN(n int) bool {
	p := l.p.Load()
	if p.inf {
		return true
	}
	if n > p.burst {
		l.rejected.inc()
		return false
	}
	if p.zero {
		return l.takeFixed(p, n)
	}
	var now int64 // l.now(), inlined by hand for the hot path
	if l.clk == nil {
		now = clock.Coarse()
	} else {
		now = l.clk.Nanotime()
	}
	if l.leases != nil && n == 1 {
		return l.allowLeased(p, now)
	}
	cost := p.cost(n)
	for {
		tat := l.tat.Load()
		next := max(tat, now) + cost
		if next-now > p.burstNs {
			l.rejected.inc()
			return false
		}
		if l.tat.CompareAndSwap(tat, next) {
			return true
		}
	}
}

// allowLeased is Allow with WithLocalBatch: take a token from the calling
// stripe's lease, or from the bucket, renewing the lease while the bucket is
// at least half full.
func (l *TokenBucket) allowLeased(p *params, now int64) bool {
	var x byte
	s := &l.leases[(uintptr(unsafe.Pointer(&x))>>13)&3]
	for {
		v := s.v.Load()
		if v&0xffff == 0 || now-(v>>16)<<leaseShift > leaseTTL {
			break
		}
		if s.v.CompareAndSwap(v, v-1) {
			return true
		}
	}
	batchNs := int64(float64(l.batch) * p.interval)
	for {
		tat := l.tat.Load()
		next := max(tat, now) + p.one
		if next-now > p.burstNs {
			l.rejected.inc()
			return false
		}
		if leased := next + batchNs; leased-now <= p.burstNs/2 {
			if l.tat.CompareAndSwap(tat, leased) {
				l.renewLease(s, now)
				return true
			}
			continue
		}
		if l.tat.CompareAndSwap(tat, next) {
			return true
		}
	}
}

// renewLease puts a fresh batch into a stripe's lease. Goroutines on one
// stripe may renew at the same time; tokens left in a lease that has not
// expired are kept, not overwritten, because they are already taken from
// the bucket and would otherwise be lost.
func (l *TokenBucket) renewLease(s *lease, now int64) {
	for {
		v := s.v.Load()
		n := l.batch
		if c := v & 0xffff; c != 0 && now-(v>>16)<<leaseShift <= leaseTTL {
			n = min(c+l.batch, 0xffff)
		}
		if s.v.CompareAndSwap(v, (now>>leaseShift)<<16|n) {
			return
		}
	}
}

func (l *TokenBucket) takeFixed(p *params, n int) bool {
	for {
		u := l.used.Load()
		if u+int64(n) > int64(p.burst) {
			l.rejected.inc()
			return false
		}
		if l.used.CompareAndSwap(u, u+int64(n)) {
			return true
		}
	}
}

// Tokens returns the number of tokens available now; it is negative while
// reservations are outstanding.
func (l *TokenBucket) Tokens() float64 {
	p := l.p.Load()
	switch {
	case p.inf:
		return float64(p.burst)
	case p.zero:
		return float64(int64(p.burst) - l.used.Load())
	}
	now := l.now()
	tat := max(l.tat.Load(), now)
	return float64(p.burstNs-(tat-now)) / p.interval
}

// Reservation holds tokens taken in advance by Reserve or ReserveN. It is a
// small value; copying it is fine, but Cancel only the copy you act on.
type Reservation struct {
	lim       *TokenBucket
	ok        bool
	tokens    int
	timeToAct int64 // reading at which the events may happen
	tatAfter  int64 // bucket state right after this reservation
	cost      int64
}

// OK reports whether the limiter can provide the requested tokens within the
// maximum wait. A Reservation that is not OK holds no tokens and has no
// delay.
func (r Reservation) OK() bool { return r.ok }

// Delay returns how long the holder must wait before acting. It is zero if
// it can act now and InfDuration if the reservation is not OK.
func (r Reservation) Delay() time.Duration {
	if !r.ok {
		return InfDuration
	}
	if r.lim == nil {
		return 0
	}
	return max(0, time.Duration(r.timeToAct-r.lim.now()))
}

// TimeToAct returns the time at which the events may happen.
func (r Reservation) TimeToAct() time.Time { return clock.Time(r.timeToAct) }

// Cancel returns the reservation's tokens to the limiter, except those that
// later reservations already depend on, so that other events may proceed
// sooner. It does nothing if the time to act has already passed.
func (r Reservation) Cancel() {
	if !r.ok || r.lim == nil || r.tokens == 0 {
		return
	}
	l := r.lim
	p := l.p.Load()
	if p.inf {
		return
	}
	if p.zero {
		l.used.Add(-int64(r.tokens))
		return
	}
	if r.timeToAct < l.now() {
		return
	}
	for {
		cur := l.tat.Load()
		restore := r.cost - max(0, cur-r.tatAfter)
		if restore <= 0 {
			return
		}
		if l.tat.CompareAndSwap(cur, cur-restore) {
			return
		}
	}
}

// Reserve is ReserveN(1).
func (l *TokenBucket) Reserve() Reservation { return l.ReserveN(1) }

// ReserveN takes n tokens now, possibly going into debt, and returns a
// Reservation that tells how long the caller must wait before the n events
// may happen. It is not OK if n exceeds the burst (and the rate is not Inf),
// or if the rate is 0 and fewer than n tokens are left. A caller that decides
// not to act must call Cancel.
func (l *TokenBucket) ReserveN(n int) Reservation {
	return l.reserveN(n, maxNs)
}

func (l *TokenBucket) reserveN(n int, maxWait int64) Reservation {
	p := l.p.Load()
	if p.inf {
		return Reservation{ok: true, tokens: n}
	}
	if n > p.burst {
		return Reservation{}
	}
	if p.zero {
		if !l.takeFixed(p, n) {
			return Reservation{}
		}
		return Reservation{lim: l, ok: true, tokens: n, timeToAct: math.MinInt64 / 2}
	}
	now := l.now()
	cost := p.cost(n)
	for {
		tat := l.tat.Load()
		next := max(tat, now) + cost
		act := next - p.burstNs
		if act-now > maxWait {
			return Reservation{}
		}
		if l.tat.CompareAndSwap(tat, next) {
			return Reservation{lim: l, ok: true, tokens: n, timeToAct: act, tatAfter: next, cost: cost}
		}
	}
}

// ErrExceedsBurst is returned by WaitN when n exceeds the limiter's burst.
var ErrExceedsBurst = errors.New("ratelimit: wait would exceed the limiter's burst")

// ErrWouldExceedDeadline is returned by WaitN when the context's deadline
// comes before the events could happen.
var ErrWouldExceedDeadline = errors.New("ratelimit: wait would exceed context deadline")

// Wait is WaitN(ctx, 1).
func (l *TokenBucket) Wait(ctx context.Context) error { return l.WaitN(ctx, 1) }

// WaitN blocks until n events may happen, the context is done, or it is
// clear that the context's deadline will pass first. It returns
// ErrExceedsBurst if n exceeds the burst (and the rate is not Inf),
// ErrWouldExceedDeadline if the deadline would pass first (taking no tokens),
// and the context's error if it is done before the wait ends (returning the
// tokens with Cancel).
func (l *TokenBucket) WaitN(ctx context.Context, n int) error {
	p := l.p.Load()
	if n > p.burst && !p.inf {
		return fmt.Errorf("%w (n=%d, burst=%d)", ErrExceedsBurst, n, p.burst)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	maxWait := int64(maxNs)
	if d, ok := ctx.Deadline(); ok {
		maxWait = clock.Reading(d) - l.now()
	}
	r := l.reserveN(n, maxWait)
	if !r.ok {
		if p.zero {
			return fmt.Errorf("%w (rate is 0, tokens exhausted)", ErrWouldExceedDeadline)
		}
		return ErrWouldExceedDeadline
	}
	d := r.Delay()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	}
}

// SetLimit changes the rate, keeping the tokens currently available.
func (l *TokenBucket) SetLimit(r Limit) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reconfigure(newParams(r, l.p.Load().burst))
}

// SetBurst changes the burst, keeping the tokens currently available (capped
// at the new burst).
func (l *TokenBucket) SetBurst(b int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reconfigure(newParams(l.p.Load().limit, b))
}

// reconfigure carries the available tokens over to the new parameters.
// Callers racing with it are judged against either the old or the new
// parameters.
func (l *TokenBucket) reconfigure(np *params) {
	tokens := math.Min(l.Tokens(), float64(np.burst))
	switch {
	case np.inf:
	case np.zero:
		l.used.Store(int64(np.burst) - int64(math.Floor(tokens)))
	default:
		now := l.now()
		debt := np.burstNs - int64(tokens*np.interval)
		l.tat.Store(now + debt)
	}
	l.p.Store(np)
}

// Rejected returns how many Allow/AllowN calls have been refused.
func (l *TokenBucket) Rejected() uint64 { return l.rejected.load() }

// ComponentState implements component.Reporter: kind "ratelimit" with the
// gauges "tokens", "limit", "burst" and the counter "rejected".
func (l *TokenBucket) ComponentState() component.State {
	p := l.p.Load()
	lim := float64(p.limit)
	if p.inf {
		lim = -1 // infinite
	}
	return component.State{
		Kind: "ratelimit",
		Metrics: map[string]float64{
			"tokens":   l.Tokens(),
			"limit":    lim,
			"burst":    float64(p.burst),
			"rejected": float64(l.rejected.load()),
		},
	}
}

// counter is a striped counter: concurrent increments from different
// goroutines mostly land on different cache lines.
type counter struct {
	s [4]struct {
		n atomic.Uint64
		_ [56]byte
	}
}

func (c *counter) inc() {
	var x byte
	// A goroutine's stack address is a cheap, stable-enough hint of who is
	// calling; the conversion does not make x escape.
	i := (uintptr(unsafe.Pointer(&x)) >> 13) & 3
	c.s[i].n.Add(1)
}

func (c *counter) load() uint64 {
	var t uint64
	for i := range c.s {
		t += c.s[i].n.Load()
	}
	return t
}
