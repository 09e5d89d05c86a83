// Package retry re-runs a failed call with backoff, within limits that keep
// retries from multiplying load during an outage.
//
// A Retrier retries a call while its error is retryable, up to MaxAttempts
// attempts and MaxElapsed time, waiting between attempts for a backoff
// (constant, linear or exponential) randomised by a jitter (full by default,
// or decorrelated, equal, none). An error that carries a retry-after hint
// (the RetryAfterer interface, e.g. from an HTTP 429 or 503) stretches the
// wait to at least the hint. The context's cancellation stops the waiting
// at once, and a wait that would outlast the context's deadline is not
// started.
//
// A Budget shared across calls caps retries as a token bucket: each retry
// costs tokens, each success refills a little. While a dependency is down
// the budget empties and calls fail after their first attempt, so a fleet of
// clients does not multiply the load on it.
//
// The success path (first attempt succeeds) makes no allocation and reads
// no clock unless MaxElapsed is set.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/brownout-io/brownout/sdk/component"
	"github.com/brownout-io/brownout/sdk/resilience/clock"
)

// RetryAfterer is implemented by errors that know how long the caller should
// wait before trying again. A positive hint sets a floor on the next wait.
type RetryAfterer interface {
	RetryAfter() time.Duration
}

// Backoff selects how the base wait grows with the attempt number.
type Backoff uint8

const (
	// Exponential waits BaseDelay × Multiplier^(n-1) before retry n.
	Exponential Backoff = iota
	// Linear waits BaseDelay × n before retry n.
	Linear
	// Constant waits BaseDelay before every retry.
	Constant
)

// Jitter selects how a wait is randomised.
type Jitter uint8

const (
	// FullJitter waits a uniformly random time in [0, backoff].
	FullJitter Jitter = iota
	// NoJitter waits exactly the backoff.
	NoJitter
	// EqualJitter waits backoff/2 plus a random time in [0, backoff/2].
	EqualJitter
	// DecorrelatedJitter waits a random time in [BaseDelay, 3 × previous
	// wait], capped at MaxDelay; the Backoff setting is not used.
	DecorrelatedJitter
	// AdditiveJitter waits the backoff plus a uniformly random time in
	// [0, JitterMax] (the seed's jitter): never less than the backoff, and
	// up to JitterMax more than MaxDelay.
	AdditiveJitter
)

// Rand is a source of randomness; *math/rand/v2.Rand implements it. Int64N
// must return a value in [0, n).
type Rand interface {
	Int64N(n int64) int64
}

// Sentinel reasons for giving up, found with errors.Is on an *Error.
var (
	// ErrAttemptsExhausted: MaxAttempts attempts were made.
	ErrAttemptsExhausted = errors.New("retry: attempts exhausted")
	// ErrElapsedExhausted: the next wait would end past MaxElapsed.
	ErrElapsedExhausted = errors.New("retry: max elapsed time exhausted")
	// ErrBudgetExhausted: the shared Budget could not pay for a retry.
	ErrBudgetExhausted = errors.New("retry: retry budget exhausted")
)

// Error is returned when a Retrier gives up on a retryable error. Attempts
// is the number of attempts made, Err the last attempt's error, and Reason
// why no further attempt was made: ErrAttemptsExhausted,
// ErrElapsedExhausted, ErrBudgetExhausted, or the context's error.
// errors.Is and errors.As see through to both Err and Reason.
type Error struct {
	Attempts int
	Err      error
	Reason   error
}

// Error describes the attempts, the reason and the last error.
func (e *Error) Error() string {
	return fmt.Sprintf("retry: gave up after %d attempt(s) (%v): %v", e.Attempts, e.Reason, e.Err)
}

// Unwrap returns the last error and the reason.
func (e *Error) Unwrap() []error { return []error{e.Err, e.Reason} }

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err as not retryable whatever the Retryable predicate
// says. Do returns err itself when fn returns Permanent(err), and the error
// unchanged when a Permanent error is wrapped deeper in it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// DefaultRetryable is the default Retryable predicate: every error except
// those marked Permanent and the context errors (the call's own context
// ended; retrying cannot help).
func DefaultRetryable(err error) bool {
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// Config configures a Retrier. Zero fields take the documented defaults.
type Config struct {
	// MaxAttempts is the most attempts made, the first included. Default 3;
	// 1 disables retries.
	MaxAttempts int
	// MaxElapsed stops retrying once this much time has passed since the
	// first attempt started, and skips a wait that would end past it. Zero
	// means no limit.
	MaxElapsed time.Duration
	// Backoff is the growth of the base wait. Default Exponential.
	Backoff Backoff
	// BaseDelay is the first wait before jitter. Default 100ms.
	BaseDelay time.Duration
	// MaxDelay caps every wait computed from the backoff (not a retry-after
	// hint). Default 10s.
	MaxDelay time.Duration
	// Multiplier is the Exponential growth factor. Default 2.
	Multiplier float64
	// BackoffFunc, if set, is the base wait before retry n (1 for the first
	// retry), replacing Backoff, BaseDelay's growth and Multiplier; it is
	// capped at MaxDelay and then jittered like any other. It must be safe
	// for concurrent use.
	BackoffFunc func(retry int) time.Duration
	// Jitter randomises waits. Default FullJitter.
	Jitter Jitter
	// JitterMax bounds AdditiveJitter's addition. Default BaseDelay.
	JitterMax time.Duration
	// Retryable classifies errors; non-retryable errors are returned at
	// once, unwrapped. Default DefaultRetryable.
	Retryable func(error) bool
	// Budget, if set, must grant a token for every retry; share one Budget
	// across the Retriers that call the same dependency.
	Budget *Budget
	// Rand is the jitter's random source. Default: math/rand/v2's global
	// source, which is safe for concurrent use. Inject a seeded one in
	// tests; a *rand.Rand is not safe for concurrent use, so guard it if the
	// Retrier is shared.
	Rand Rand
	// Sleep waits d or until ctx is done, returning ctx.Err() in the latter
	// case. Default: a timer. Tests inject a fake.
	Sleep func(ctx context.Context, d time.Duration) error
	// Clock measures MaxElapsed. Default: the coarse monotonic clock.
	Clock clock.Clock
	// OnRetry, if set, is called before each wait with the retry number
	// (1 for the first retry), the error that caused it, and the wait.
	OnRetry func(retry int, err error, wait time.Duration)
}

// Retrier runs calls with retries. It is safe for concurrent use.
type Retrier struct {
	maxAttempts int
	maxElapsed  int64
	backoff     Backoff
	base, cap   int64
	mult        float64
	backoffFn   func(int) time.Duration
	jitter      Jitter
	jitterMax   int64
	retryable   func(error) bool
	budget      *Budget
	rnd         Rand
	sleep       func(context.Context, time.Duration) error
	clk         clock.Clock
	onRetry     func(int, error, time.Duration)

	retries atomic.Uint64
	gaveUp  atomic.Uint64
}

// New returns a Retrier.
func New(cfg Config) *Retrier {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.BaseDelay <= 0 {
		cfg.BaseDelay = 100 * time.Millisecond
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 10 * time.Second
	}
	cfg.MaxDelay = max(cfg.MaxDelay, cfg.BaseDelay)
	if cfg.Multiplier < 1 {
		cfg.Multiplier = 2
	}
	if cfg.Retryable == nil {
		cfg.Retryable = DefaultRetryable
	}
	if cfg.JitterMax <= 0 {
		cfg.JitterMax = cfg.BaseDelay
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	return &Retrier{
		maxAttempts: cfg.MaxAttempts,
		maxElapsed:  int64(cfg.MaxElapsed),
		backoff:     cfg.Backoff,
		base:        int64(cfg.BaseDelay),
		cap:         int64(cfg.MaxDelay),
		mult:        cfg.Multiplier,
		backoffFn:   cfg.BackoffFunc,
		jitter:      cfg.Jitter,
		jitterMax:   int64(cfg.JitterMax),
		retryable:   cfg.Retryable,
		budget:      cfg.Budget,
		rnd:         cfg.Rand,
		sleep:       cfg.Sleep,
		clk:         cfg.Clock,
		onRetry:     cfg.OnRetry,
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Retrier) now() int64 {
	if r.clk != nil {
		return r.clk.Nanotime()
	}
	return clock.Coarse()
}

// Do calls fn until it succeeds, returns a non-retryable error, or a limit
// is reached. It returns nil on success; a non-retryable error as fn
// returned it (a Permanent one unwrapped); and otherwise an *Error naming
// the last error and the reason for giving up.
func (r *Retrier) Do(ctx context.Context, fn func(context.Context) error) error {
	// Kept small enough to be inlined: the success path is one indirect
	// call and two nil checks.
	if r.maxElapsed > 0 {
		return r.doTimed(ctx, fn)
	}
	if err := fn(ctx); err != nil {
		return r.retry(ctx, fn, err, 0)
	}
	if r.budget != nil {
		r.budget.success()
	}
	return nil
}

func (r *Retrier) doTimed(ctx context.Context, fn func(context.Context) error) error {
	start := r.now()
	if err := fn(ctx); err != nil {
		return r.retry(ctx, fn, err, start)
	}
	if r.budget != nil {
		r.budget.success()
	}
	return nil
}

func (r *Retrier) retry(ctx context.Context, fn func(context.Context) error, err error, start int64) error {
	var (
		prev    = r.base
		charged int64 // tokens taken from the budget for the latest retry
	)
	for attempt := 1; ; attempt++ {
		if p, ok := err.(permanent); ok {
			return p.err
		}
		var p permanent
		if errors.As(err, &p) || !r.retryable(err) {
			return err
		}
		if attempt >= r.maxAttempts {
			return r.giveUp(attempt, err, ErrAttemptsExhausted)
		}
		if cerr := ctx.Err(); cerr != nil {
			return r.giveUp(attempt, err, cerr)
		}
		wait := r.wait(attempt, prev)
		prev = wait
		var ra RetryAfterer
		if errors.As(err, &ra) {
			wait = max(wait, int64(ra.RetryAfter()))
		}
		if r.maxElapsed > 0 && r.now()+wait-start > r.maxElapsed {
			return r.giveUp(attempt, err, ErrElapsedExhausted)
		}
		if d, ok := ctx.Deadline(); ok && time.Until(d) < time.Duration(wait) {
			return r.giveUp(attempt, err, context.DeadlineExceeded)
		}
		if r.budget != nil {
			if charged = r.budget.take(err); charged < 0 {
				return r.giveUp(attempt, err, ErrBudgetExhausted)
			}
		}
		r.retries.Add(1)
		if r.onRetry != nil {
			r.onRetry(attempt, err, time.Duration(wait))
		}
		if serr := r.sleep(ctx, time.Duration(wait)); serr != nil {
			return r.giveUp(attempt, err, serr)
		}
		if err = fn(ctx); err == nil {
			if r.budget != nil {
				r.budget.refill(charged)
			}
			return nil
		}
	}
}

func (r *Retrier) giveUp(attempts int, err, reason error) error {
	r.gaveUp.Add(1)
	return &Error{Attempts: attempts, Err: err, Reason: reason}
}

func (r *Retrier) rand(n int64) int64 {
	if n <= 0 {
		return 0
	}
	if r.rnd != nil {
		return r.rnd.Int64N(n)
	}
	return rand.Int64N(n)
}

// wait returns the wait before retry n (n ≥ 1) given the previous wait.
func (r *Retrier) wait(n int, prev int64) int64 {
	if r.jitter == DecorrelatedJitter {
		hi := min(r.cap, max(r.base, satMul(prev, 3)))
		return r.base + r.rand(hi-r.base+1)
	}
	var d int64
	switch {
	case r.backoffFn != nil:
		d = max(0, int64(r.backoffFn(n)))
	case r.backoff == Constant:
		d = r.base
	case r.backoff == Linear:
		d = satMul(r.base, int64(n))
	default:
		f := float64(r.base) * math.Pow(r.mult, float64(n-1))
		d = math.MaxInt64
		if f < math.MaxInt64/2 {
			d = int64(f)
		}
	}
	d = min(d, r.cap)
	switch r.jitter {
	case NoJitter:
		return d
	case EqualJitter:
		return d/2 + r.rand(d-d/2+1)
	case AdditiveJitter:
		return d + r.rand(r.jitterMax+1)
	default:
		return r.rand(d + 1)
	}
}

func satMul(a, b int64) int64 {
	if a != 0 && b > math.MaxInt64/a {
		return math.MaxInt64
	}
	return a * b
}

// Retries returns how many retries (attempts after the first) were made.
func (r *Retrier) Retries() uint64 { return r.retries.Load() }

// ComponentState implements component.Reporter: kind "retry" with the
// counters "retries" and "gave_up", and, with a budget, "budget_tokens" and
// "budget_capacity".
func (r *Retrier) ComponentState() component.State {
	m := map[string]float64{
		"retries": float64(r.retries.Load()),
		"gave_up": float64(r.gaveUp.Load()),
	}
	if r.budget != nil {
		m["budget_tokens"] = float64(r.budget.Tokens())
		m["budget_capacity"] = float64(r.budget.capacity)
	}
	return component.State{Kind: "retry", Metrics: m}
}
