// Package timeout derives per-layer deadlines from a caller's remaining
// budget and reports which layer ran out of time.
//
// A request that enters a service with 800ms left should not give its
// database call a fixed 1s timeout: that call would outlive its caller. A
// Layer computes its budget from the parent context's remaining time (a
// Fraction of it, minus a Reserve kept for the work that follows, capped at
// Timeout), so that each layer ends before the one that called it and has
// time to report the failure. When a layer's deadline passes, Run returns an
// *ExceededError naming that layer, so logs and metrics say "the inventory
// call timed out", not just "context deadline exceeded".
//
// Run hands fn a context that is cheap unless fn asks for its Done
// channel: the deadline is checked with a clock read, and the timer and
// channel are created only on demand. It is an ordinary context.Context in
// every other respect: it stays valid for as long as anyone holds it (a
// goroutine fn started, a logger keeping ctx.Value), reports Canceled (or
// DeadlineExceeded, if that came first) once Run has returned, and keeps
// answering Value from its parent. It costs one 64-byte allocation per call.
//
// Config.UnsafeReuseContext recycles contexts nobody watched, which makes
// Run allocation-free, at the cost its name says: fn must not keep the
// context after it returns, nor start goroutines that use it, or they will
// read another call's values and deadline. WithTimeout gives a standard
// library context for callers that need one.
package timeout

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brownout-io/brownout/sdk/component"
	"github.com/brownout-io/brownout/sdk/resilience/clock"
)

// ExceededError reports that a layer's deadline passed. It matches
// context.DeadlineExceeded with errors.Is, and unwraps to the error the call
// returned (nil when the budget was too small to start the call).
type ExceededError struct {
	// Layer is the name of the layer whose deadline passed.
	Layer string
	// Budget is the time the layer granted the call.
	Budget time.Duration
	// NotStarted is true when the call was not made because the budget was
	// below the layer's MinBudget.
	NotStarted bool
	// Err is what the call returned.
	Err error
}

// Error names the layer and its budget.
func (e *ExceededError) Error() string {
	if e.NotStarted {
		return fmt.Sprintf("timeout: layer %q not started: budget %v below minimum", e.Layer, e.Budget)
	}
	if e.Err == nil {
		return fmt.Sprintf("timeout: layer %q exceeded its %v budget", e.Layer, e.Budget)
	}
	return fmt.Sprintf("timeout: layer %q exceeded its %v budget: %v", e.Layer, e.Budget, e.Err)
}

// Is makes errors.Is(err, context.DeadlineExceeded) true.
func (e *ExceededError) Is(target error) bool { return target == context.DeadlineExceeded }

// Unwrap returns the call's error.
func (e *ExceededError) Unwrap() error { return e.Err }

// ExpiredLayer returns the name of the innermost layer whose deadline
// passed, if err carries an *ExceededError.
func ExpiredLayer(err error) (string, bool) {
	var e *ExceededError
	if errors.As(err, &e) {
		return e.Layer, true
	}
	return "", false
}

// Config configures a Layer.
type Config struct {
	// Name identifies the layer in errors and reports.
	Name string
	// Timeout caps the layer's budget; it is the whole budget when the
	// parent context has no deadline. Zero means no cap (then a parent
	// without a deadline gives an unbounded budget).
	Timeout time.Duration
	// Fraction of the parent's remaining time granted to the layer, in
	// (0, 1]. Default 1.
	Fraction float64
	// Reserve is kept back from the parent's remaining time for the work
	// after this layer returns (handling its error, writing a response).
	Reserve time.Duration
	// MinBudget makes Run fail fast, without calling fn, when the budget is
	// smaller. Default 0: only a budget that is already spent fails fast.
	MinBudget time.Duration
	// Clock is the time source. Default: the coarse monotonic clock, so
	// deadlines may fall up to about a millisecond early.
	Clock clock.Clock
	// UnsafeReuseContext recycles the context Run hands fn when nothing
	// watched its Done channel, saving its allocation. It is safe only if
	// fn never keeps the context after returning, nor starts a goroutine
	// that does: a kept context would later carry another call's values
	// and deadline. Off by default.
	UnsafeReuseContext bool
}

// Layer is one level of a timeout budget. It is immutable and safe for
// concurrent use.
type Layer struct {
	name     string
	timeout  int64
	fraction float64
	reserve  int64
	min      int64
	clk      clock.Clock
	reuse    bool
	expired  atomic.Uint64
}

// New returns a Layer.
func New(cfg Config) *Layer {
	if cfg.Fraction <= 0 || cfg.Fraction > 1 {
		cfg.Fraction = 1
	}
	return &Layer{
		name:     cfg.Name,
		timeout:  int64(cfg.Timeout),
		fraction: cfg.Fraction,
		reserve:  int64(cfg.Reserve),
		min:      int64(cfg.MinBudget),
		clk:      cfg.Clock,
		reuse:    cfg.UnsafeReuseContext,
	}
}

// Name returns the layer's name.
func (l *Layer) Name() string { return l.name }

func (l *Layer) now() int64 {
	if l.clk != nil {
		return l.clk.Nanotime()
	}
	return clock.Coarse()
}

const unbounded = int64(1<<63 - 1)

// budget returns the budget granted at now under ctx.
func (l *Layer) budget(ctx context.Context, now int64) int64 {
	b := unbounded
	if l.timeout > 0 {
		b = l.timeout
	}
	if d, ok := ctx.Deadline(); ok {
		rem := clock.Reading(d) - now
		if l.fraction < 1 {
			rem = int64(float64(rem) * l.fraction)
		}
		b = min(b, rem-l.reserve)
	}
	return b
}

// Budget returns the time this layer would grant a call made now under ctx,
// and whether that is enough to start it (positive and at least MinBudget).
// An unbounded budget is reported as the largest Duration.
func (l *Layer) Budget(ctx context.Context) (time.Duration, bool) {
	b := l.budget(ctx, l.now())
	return time.Duration(b), b > 0 && b >= l.min
}

// WithTimeout returns an ordinary context with the layer's deadline, whose
// cause (context.Cause) is an *ExceededError naming the layer once the
// deadline passes. The error is non-nil, and the context already done, when
// the budget is too small to start. Unlike Run's context it may be kept
// after the call; it allocates like context.WithDeadline.
func (l *Layer) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc, error) {
	now := l.now()
	b := l.budget(ctx, now)
	if b <= 0 || b < l.min {
		c, cancel := context.WithCancelCause(ctx)
		err := &ExceededError{Layer: l.name, Budget: time.Duration(max(b, 0)), NotStarted: true}
		cancel(err)
		return c, func() {}, err
	}
	if b == unbounded {
		c, cancel := context.WithCancel(ctx)
		return c, cancel, nil
	}
	c, cancel := context.WithDeadlineCause(ctx, clock.Time(now+b), &ExceededError{Layer: l.name, Budget: time.Duration(b)})
	return c, cancel, nil
}

// Run calls fn with a context bounded by the layer's budget. It returns
// fn's error, except that an error returned after the layer's own deadline
// passed (and not already attributed to an inner layer) comes back as an
// *ExceededError naming this layer and wrapping it. A result that arrives
// in time is returned as is, even if the deadline passes just after. If the
// budget is too small to start, fn is not called.
//
// The context fn receives is done once Run returns, and stays valid (its
// Err, Deadline and Value) for as long as anyone keeps it, unless the layer
// was configured with UnsafeReuseContext (see the package doc).
func (l *Layer) Run(ctx context.Context, fn func(context.Context) error) error {
	var now int64 // l.now(), inlined by hand for the hot path
	if l.clk == nil {
		now = clock.Coarse()
	} else {
		now = l.clk.Nanotime()
	}
	b := l.budget(ctx, now)
	if b <= 0 || b < l.min {
		l.expired.Add(1)
		return &ExceededError{Layer: l.name, Budget: time.Duration(max(b, 0)), NotStarted: true}
	}
	if b == unbounded {
		return fn(ctx)
	}
	var c *lazyCtx
	if l.reuse {
		c = pool.Get().(*lazyCtx)
	} else {
		c = new(lazyCtx)
	}
	c.parent, c.deadline, c.clk = ctx, now+b, l.clk
	err := fn(c)
	timedOut := err != nil && (c.fired() || l.now() >= c.deadline)
	c.release(l.reuse)
	if !timedOut {
		return err
	}
	var inner *ExceededError
	if errors.As(err, &inner) {
		return err // an inner layer ran out first
	}
	if ctx.Err() != nil {
		if _, ok := ExpiredLayer(context.Cause(ctx)); ok {
			return err // an outer layer's deadline: let it report
		}
	}
	l.expired.Add(1)
	return &ExceededError{Layer: l.name, Budget: time.Duration(b), Err: err}
}

// Expired returns how many calls exceeded this layer's budget, including
// those not started for lack of budget.
func (l *Layer) Expired() uint64 { return l.expired.Load() }

// ComponentState implements component.Reporter: kind "timeout" with the
// counter "expired" and the gauge "timeout_seconds" (0 when uncapped).
func (l *Layer) ComponentState() component.State {
	return component.State{Kind: "timeout", Metrics: map[string]float64{
		"expired":         float64(l.expired.Load()),
		"timeout_seconds": time.Duration(l.timeout).Seconds(),
	}}
}

var pool = sync.Pool{New: func() any { return new(lazyCtx) }}

// closedChan is what an ended context's Done returns.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// lazyCtx is the context Run passes to fn. It reports its deadline and
// error from a clock read, and creates the Done channel, its timer and the
// parent watch (a watch, allocated apart) only when Done (or AfterFunc) is
// called.
//
// When Run returns, a context whose Done or AfterFunc was never called is
// marked ended with one compare-and-swap of its state: from then on it
// reports the error it ended with, and returns a closed channel from Done.
// With UnsafeReuseContext it is recycled instead. One that was observed may
// still be watched (by a derived context, or a goroutine selecting on it),
// so it is closed when Run returns, and never reused.
//
// It is 64 bytes, one size class and one cache line: the call path
// allocates and clears no more than that, and contexts recycled on
// different CPUs never share a line.
type lazyCtx struct {
	parent   context.Context
	deadline int64
	clk      clock.Clock
	state    atomic.Uint32 // ctxRunning, ctxArming, ctxWatched or ctxEnded…
	w        *watch        // set before state becomes ctxWatched
	_        [8]byte       // to 64 bytes
}

// States of a lazyCtx. The ended states say which error it ended with.
const (
	ctxRunning      = iota // in Run, unwatched
	ctxArming              // Done or AfterFunc is creating the watch
	ctxWatched             // w is set: w.mu guards the rest
	ctxEndedCancel         // Run returned: Canceled
	ctxEndedTimeout        // Run returned after the deadline: DeadlineExceeded
	ctxEndedParent         // Run returned after the parent ended: its error
)

// watch is what a context that someone watches needs: its channel, timer,
// parent watch and AfterFunc callbacks.
type watch struct {
	mu     sync.Mutex
	done   chan struct{}
	err    error
	timer  *time.Timer
	stop   func() bool
	afters []*afterFunc
}

type afterFunc struct{ f func() }

func (c *lazyCtx) now() int64 {
	if c.clk != nil {
		return c.clk.Nanotime()
	}
	return clock.Coarse()
}

// Deadline implements context.Context.
func (c *lazyCtx) Deadline() (time.Time, bool) { return clock.Time(c.deadline), true }

// Value implements context.Context.
func (c *lazyCtx) Value(key any) any {
	if p := c.parent; p != nil {
		return p.Value(key)
	}
	return nil
}

// watched waits out an arming in progress and returns the context's state,
// never ctxArming.
func (c *lazyCtx) watched() uint32 {
	for {
		st := c.state.Load()
		if st != ctxArming {
			return st
		}
		runtime.Gosched()
	}
}

// Err implements context.Context.
func (c *lazyCtx) Err() error {
	switch st := c.state.Load(); st {
	case ctxRunning, ctxArming:
	case ctxWatched:
		c.w.mu.Lock()
		defer c.w.mu.Unlock()
		return c.w.err
	default:
		return endedErr(st, c.parent)
	}
	p := c.parent
	if p == nil {
		return context.Canceled // used after Run returned
	}
	if err := p.Err(); err != nil {
		return err
	}
	if c.now() >= c.deadline {
		return context.DeadlineExceeded
	}
	return nil
}

// endedErr is the error of an ended state.
func endedErr(st uint32, parent context.Context) error {
	switch st {
	case ctxEndedTimeout:
		return context.DeadlineExceeded
	case ctxEndedParent:
		if parent != nil {
			if err := parent.Err(); err != nil {
				return err // a context's error never changes once set
			}
		}
	}
	return context.Canceled
}

// Done implements context.Context. The first call arms a timer and watches
// the parent.
func (c *lazyCtx) Done() <-chan struct{} {
	w, fs := c.arm()
	if w == nil {
		return closedChan
	}
	run(fs)
	return w.done
}

// AfterFunc arranges for f to run in its own goroutine once the context is
// done, like context.AfterFunc. Its presence also lets contexts derived from
// this one (context.WithCancel and friends) watch it without a goroutine.
func (c *lazyCtx) AfterFunc(f func()) (stop func() bool) {
	w, fs := c.arm()
	run(fs)
	if w == nil {
		go f()
		return func() bool { return false }
	}
	a := &afterFunc{f: f}
	w.mu.Lock()
	if w.err != nil {
		w.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	w.afters = append(w.afters, a)
	w.mu.Unlock()
	return func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		for i, x := range w.afters {
			if x == a {
				w.afters = append(w.afters[:i], w.afters[i+1:]...)
				return true
			}
		}
		return false
	}
}

// arm creates the watch if needed and returns it, with the callbacks to
// run if it was closed at once; nil if the context has ended unwatched.
func (c *lazyCtx) arm() (*watch, []*afterFunc) {
	for {
		switch st := c.watched(); {
		case st == ctxWatched:
			return c.w, nil
		case st != ctxRunning:
			return nil, nil
		case c.parent == nil:
			return nil, nil // recycled: used after Run returned
		}
		if c.state.CompareAndSwap(ctxRunning, ctxArming) {
			break
		}
	}
	w := &watch{done: make(chan struct{})}
	c.w = w
	w.mu.Lock()
	c.state.Store(ctxWatched)
	defer w.mu.Unlock()
	if err := c.parent.Err(); err != nil {
		return w, w.closeLocked(err)
	}
	rem := c.deadline - c.now()
	if rem <= 0 {
		return w, w.closeLocked(context.DeadlineExceeded)
	}
	w.timer = time.AfterFunc(time.Duration(rem), c.fire)
	if c.parent.Done() != nil {
		w.stop = context.AfterFunc(c.parent, c.parentDone)
	}
	return w, nil
}

// closeLocked closes the Done channel with err, once, and returns the
// AfterFunc callbacks to run once the lock is released.
func (w *watch) closeLocked(err error) []*afterFunc {
	if w.err != nil {
		return nil
	}
	w.err = err
	close(w.done)
	fs := w.afters
	w.afters = nil
	return fs
}

func run(fs []*afterFunc) {
	for _, a := range fs {
		go a.f()
	}
}

// fire runs when the timer expires.
func (c *lazyCtx) fire() {
	w := c.w
	w.mu.Lock()
	if rem := c.deadline - c.now(); rem > 0 && w.err == nil {
		// The coarse clock lags the timer: check again shortly.
		w.timer.Reset(time.Duration(rem))
		w.mu.Unlock()
		return
	}
	fs := w.closeLocked(context.DeadlineExceeded)
	w.mu.Unlock()
	run(fs)
}

func (c *lazyCtx) parentDone() {
	w := c.w
	w.mu.Lock()
	fs := w.closeLocked(c.parent.Err())
	w.mu.Unlock()
	run(fs)
}

// fired reports whether the Done channel was closed by the deadline.
func (c *lazyCtx) fired() bool {
	if c.state.Load() != ctxWatched {
		return false
	}
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	return c.w.err == context.DeadlineExceeded
}

// release ends the context when Run returns: an unobserved one is marked
// ended with the error it would report now (one compare-and-swap, no
// lock), or recycled when reuse is on; an observed one is closed and
// abandoned.
func (c *lazyCtx) release(reuse bool) {
	if c.state.Load() == ctxRunning { // never watched: nobody can be waiting on it
		if reuse {
			c.parent, c.clk = nil, nil
			pool.Put(c)
			return
		}
		end := uint32(ctxEndedCancel)
		if c.parent.Err() != nil {
			end = ctxEndedParent
		} else if c.now() >= c.deadline {
			end = ctxEndedTimeout
		}
		if c.state.CompareAndSwap(ctxRunning, end) {
			return
		}
	}
	if c.watched() != ctxWatched {
		return
	}
	w := c.w
	w.mu.Lock()
	fs := w.closeLocked(context.Canceled)
	if w.timer != nil {
		w.timer.Stop()
	}
	if w.stop != nil {
		w.stop()
	}
	w.mu.Unlock()
	run(fs)
}

// String describes the context for debugging.
func (c *lazyCtx) String() string {
	return fmt.Sprintf("timeout.Run(deadline in %v)", time.Duration(c.deadline-c.now()))
}
