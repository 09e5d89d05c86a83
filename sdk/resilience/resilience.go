// Package resilience composes the SDK's resilience primitives around a call
// in the order that keeps each one effective:
//
//		rate limit → circuit breaker → bulkhead → retry → timeout → call
//
//	  - The rate limiter goes first: a call over the rate is refused before it
//	    costs anything, and is not counted as a dependency failure.
//	  - The breaker sees one outcome per logical call (after retries), so a
//	    call that succeeded on its second attempt counts as a success, and
//	    while it is open no retries are attempted.
//	  - The bulkhead bounds the logical calls in flight, including their
//	    retry waits.
//	  - Retry re-runs only the inner part, each attempt under a fresh
//	    timeout.
//	  - The timeout applies per attempt, derived from the caller's remaining
//	    budget, so the retries together never outlive the caller.
//
// Every stage is optional; a Pipeline with none just calls fn. On the
// success path a Pipeline adds no allocation to those of its stages, and
// its stages allocate none.
package resilience

import (
	"context"
	"errors"

	"github.com/brownout-io/brownout/sdk/breaker"
	"github.com/brownout-io/brownout/sdk/bulkhead"
	"github.com/brownout-io/brownout/sdk/ratelimit"
	"github.com/brownout-io/brownout/sdk/retry"
	"github.com/brownout-io/brownout/sdk/timeout"
)

// ErrRateLimited is returned when the pipeline's rate limiter refuses a
// call.
var ErrRateLimited = errors.New("resilience: rate limited")

// Limiter is the rate-limiting stage; *ratelimit.TokenBucket and
// *ratelimit.SlidingWindow implement it.
type Limiter interface {
	Allow() bool
}

// Config selects a Pipeline's stages. Nil stages are skipped.
type Config struct {
	RateLimit Limiter
	Breaker   *breaker.Breaker
	Bulkhead  *bulkhead.Bulkhead
	Retry     *retry.Retrier
	Timeout   *timeout.Layer
}

// Pipeline runs calls through its stages. It is immutable and safe for
// concurrent use; the stages may be shared with other pipelines (a Budget
// or Breaker per dependency, say).
type Pipeline struct {
	limiter Limiter
	bucket  *ratelimit.TokenBucket // limiter, when it is one: a direct call
	breaker *breaker.Breaker
	bulk    *bulkhead.Bulkhead
	retry   *retry.Retrier
	timeout *timeout.Layer
}

// New returns a Pipeline with the given stages.
func New(cfg Config) *Pipeline {
	tb, _ := cfg.RateLimit.(*ratelimit.TokenBucket)
	return &Pipeline{
		bucket:  tb,
		limiter: cfg.RateLimit,
		breaker: cfg.Breaker,
		bulk:    cfg.Bulkhead,
		retry:   cfg.Retry,
		timeout: cfg.Timeout,
	}
}

// Do runs fn through the pipeline's stages. It returns ErrRateLimited,
// breaker.ErrOpen or breaker.ErrTooManyProbes, or a *bulkhead.RejectedError
// when a stage refuses the call without running it; otherwise what the
// inner stages return (see retry.Retrier.Do and timeout.Layer.Run). With a
// Timeout stage, fn may keep its context after returning unless that layer
// was configured with UnsafeReuseContext.
func (p *Pipeline) Do(ctx context.Context, fn func(context.Context) error) error {
	if p.bucket != nil {
		if !p.bucket.AllowN(1) {
			return ErrRateLimited
		}
	} else if p.limiter != nil && !p.limiter.Allow() {
		return ErrRateLimited
	}
	var tok breaker.Token
	if p.breaker != nil {
		var err error
		if tok, err = p.breaker.Allow(); err != nil {
			return err
		}
	}
	if p.bulk != nil {
		return p.bulkheaded(ctx, fn, tok)
	}
	err := p.call(ctx, fn)
	tok.Done(err)
	return err
}

// bulkheaded runs the call holding a bulkhead slot, released even if fn
// panics. (A panicking call records no breaker outcome; a half-open probe
// lost that way is covered by the breaker's HalfOpenTimeout.)
func (p *Pipeline) bulkheaded(ctx context.Context, fn func(context.Context) error, tok breaker.Token) error {
	if err := p.bulk.Acquire(ctx); err != nil {
		tok.Abandon()
		return err
	}
	defer p.bulk.Release()
	err := p.call(ctx, fn)
	tok.Done(err)
	return err
}

func (p *Pipeline) call(ctx context.Context, fn func(context.Context) error) error {
	switch {
	case p.retry != nil && p.timeout != nil:
		t := p.timeout
		return p.retry.Do(ctx, func(ctx context.Context) error { return t.Run(ctx, fn) })
	case p.retry != nil:
		return p.retry.Do(ctx, fn)
	case p.timeout != nil:
		return p.timeout.Run(ctx, fn)
	}
	return fn(ctx)
}
