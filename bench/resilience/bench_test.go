package resilience

import (
	"context"

	"testing"
	"time"

	fs "github.com/failsafe-go/failsafe-go"
	fsbulkhead "github.com/failsafe-go/failsafe-go/bulkhead"
	fscb "github.com/failsafe-go/failsafe-go/circuitbreaker"
	fsratelimiter "github.com/failsafe-go/failsafe-go/ratelimiter"
	fsretry "github.com/failsafe-go/failsafe-go/retrypolicy"
	fstimeout "github.com/failsafe-go/failsafe-go/timeout"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/brownout-io/brownout/sdk/breaker"
	"github.com/brownout-io/brownout/sdk/bulkhead"
	"github.com/brownout-io/brownout/sdk/ratelimit"
	"github.com/brownout-io/brownout/sdk/resilience"
	"github.com/brownout-io/brownout/sdk/retry"
	"github.com/brownout-io/brownout/sdk/timeout"
)

// Every benchmark runs its workload with b.RunParallel, so -cpu 1,2 shows
// how each implementation behaves under contention. Sub-benchmark names
// start with the library: brownout-…, gobreaker…, x-time-rate, failsafe-go….

var ctx = context.Background()

func ok(context.Context) error { return nil }

func parallel(b *testing.B, f func()) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			f()
		}
	})
}

// BenchmarkWarmup runs first and is left out of compare.sh's table: the
// first benchmark of a process otherwise pays for the CPU leaving idle and
// for faulting in code and data.
func BenchmarkWarmup(b *testing.B) {
	br := breaker.New(breaker.Config{})
	l := ratelimit.NewTokenBucket(1e9, 1e7)
	parallel(b, func() {
		_ = br.Execute(ctx, ok)
		_ = l.Allow()
	})
}

// BenchmarkBreakerClosed: a closed breaker wrapping a call that succeeds.
func BenchmarkBreakerClosed(b *testing.B) {
	b.Run("brownout-count", func(b *testing.B) {
		br := breaker.New(breaker.Config{Window: breaker.CountWindow, WindowSize: 100})
		parallel(b, func() { _ = br.Execute(ctx, ok) })
	})
	b.Run("brownout-time", func(b *testing.B) {
		br := breaker.New(breaker.Config{Window: breaker.TimeWindow, WindowDuration: 10 * time.Second})
		parallel(b, func() { _ = br.Execute(ctx, ok) })
	})
	b.Run("brownout-token", func(b *testing.B) {
		br := breaker.New(breaker.Config{})
		parallel(b, func() {
			t, err := br.Allow()
			if err == nil {
				t.Done(nil)
			}
		})
	})
	b.Run("gobreaker", func(b *testing.B) {
		cb := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{Name: "x"})
		req := func() (struct{}, error) { return struct{}{}, nil }
		parallel(b, func() { _, _ = cb.Execute(req) })
	})
	b.Run("gobreaker-rolling", func(b *testing.B) {
		cb := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{Name: "x", Interval: 10 * time.Second, BucketPeriod: time.Second})
		req := func() (struct{}, error) { return struct{}{}, nil }
		parallel(b, func() { _, _ = cb.Execute(req) })
	})
	b.Run("failsafe-go-count", func(b *testing.B) {
		cb := fscb.NewBuilder[any]().WithFailureThresholdRatio(50, 100).Build()
		ex := fs.With[any](cb)
		run := func() error { return nil }
		parallel(b, func() { _ = ex.Run(run) })
	})
	b.Run("failsafe-go-time", func(b *testing.B) {
		cb := fscb.NewBuilder[any]().WithFailureRateThreshold(0.5, 10, 10*time.Second).Build()
		ex := fs.With[any](cb)
		run := func() error { return nil }
		parallel(b, func() { _ = ex.Run(run) })
	})
}

// BenchmarkTokenBucketAllow: a limiter with room for every call.
func BenchmarkTokenBucketAllow(b *testing.B) {
	b.Run("brownout", func(b *testing.B) {
		l := ratelimit.NewTokenBucket(1e9, 1e7)
		parallel(b, func() { _ = l.Allow() })
	})
	b.Run("brownout-batched", func(b *testing.B) {
		l := ratelimit.NewTokenBucket(1e9, 1e7, ratelimit.WithLocalBatch(64))
		parallel(b, func() { _ = l.Allow() })
	})
	b.Run("x-time-rate", func(b *testing.B) {
		l := rate.NewLimiter(1e9, 1e7)
		parallel(b, func() { _ = l.Allow() })
	})
	b.Run("failsafe-go", func(b *testing.B) {
		l := fsratelimiter.NewBursty[any](1e9, time.Second)
		parallel(b, func() { _ = l.TryAcquirePermit() })
	})
}

// BenchmarkTokenBucketSaturated: a limiter that refuses nearly every call.
func BenchmarkTokenBucketSaturated(b *testing.B) {
	b.Run("brownout", func(b *testing.B) {
		l := ratelimit.NewTokenBucket(10, 1)
		parallel(b, func() { _ = l.Allow() })
	})
	b.Run("x-time-rate", func(b *testing.B) {
		l := rate.NewLimiter(10, 1)
		parallel(b, func() { _ = l.Allow() })
	})
	b.Run("failsafe-go", func(b *testing.B) {
		l := fsratelimiter.NewBursty[any](10, time.Second)
		parallel(b, func() { _ = l.TryAcquirePermit() })
	})
}

// BenchmarkSlidingWindowAllow: the sliding-window limiter (no peer has one).
func BenchmarkSlidingWindowAllow(b *testing.B) {
	b.Run("brownout", func(b *testing.B) {
		l := ratelimit.NewSlidingWindow(ratelimit.MaxWindowLimit, time.Millisecond)
		parallel(b, func() { _ = l.Allow() })
	})
}

// BenchmarkKeyedAllow: a per-key token bucket over 1000 hot keys.
// BenchmarkSlidingLogAllow: the exact sliding window with room for every
// call.
func BenchmarkSlidingLogAllow(b *testing.B) {
	b.Run("brownout", func(b *testing.B) {
		l := ratelimit.NewSlidingLog(1<<20, time.Millisecond)
		parallel(b, func() { _ = l.Allow() })
	})
}

func BenchmarkKeyedAllow(b *testing.B) {
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "client-" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))
	}
	b.Run("brownout", func(b *testing.B) {
		k := ratelimit.NewKeyed(ratelimit.KeyedConfig{MaxKeys: 10000},
			func(string) *ratelimit.TokenBucket { return ratelimit.NewTokenBucket(1e9, 1e7) })
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				_ = k.Allow(keys[i%len(keys)])
				i++
			}
		})
	})
}

// BenchmarkRetrySuccess: a retry policy around a call that succeeds first time.
func BenchmarkRetrySuccess(b *testing.B) {
	b.Run("brownout", func(b *testing.B) {
		r := retry.New(retry.Config{})
		parallel(b, func() { _ = r.Do(ctx, ok) })
	})
	b.Run("brownout-budget", func(b *testing.B) {
		r := retry.New(retry.Config{Budget: retry.NewBudget(retry.BudgetConfig{})})
		parallel(b, func() { _ = r.Do(ctx, ok) })
	})
	b.Run("failsafe-go", func(b *testing.B) {
		ex := fs.With[any](fsretry.NewWithDefaults[any]())
		run := func() error { return nil }
		parallel(b, func() { _ = ex.Run(run) })
	})
}

// BenchmarkBulkhead: a bulkhead with free slots around a call that succeeds.
func BenchmarkBulkhead(b *testing.B) {
	b.Run("brownout", func(b *testing.B) {
		bh := bulkhead.New(bulkhead.Config{MaxConcurrent: 1 << 20})
		parallel(b, func() { _ = bh.Execute(ctx, ok) })
	})
	b.Run("failsafe-go", func(b *testing.B) {
		ex := fs.With[any](fsbulkhead.New[any](1 << 20))
		run := func() error { return nil }
		parallel(b, func() { _ = ex.Run(run) })
	})
}

// BenchmarkTimeout: a 1s timeout around a call that returns at once.
func BenchmarkTimeout(b *testing.B) {
	b.Run("brownout", func(b *testing.B) {
		l := timeout.New(timeout.Config{Name: "x", Timeout: time.Second})
		parallel(b, func() { _ = l.Run(ctx, ok) })
	})
	b.Run("brownout-unsafe-reuse", func(b *testing.B) {
		l := timeout.New(timeout.Config{Name: "x", Timeout: time.Second, UnsafeReuseContext: true})
		parallel(b, func() { _ = l.Run(ctx, ok) })
	})
	b.Run("stdlib-context", func(b *testing.B) {
		parallel(b, func() {
			c, cancel := context.WithTimeout(ctx, time.Second)
			_ = ok(c)
			cancel()
		})
	})
	b.Run("failsafe-go", func(b *testing.B) {
		ex := fs.With[any](fstimeout.New[any](time.Second))
		run := func() error { return nil }
		parallel(b, func() { _ = ex.Run(run) })
	})
}

// BenchmarkPipelineSuccess: rate limit → breaker → retry → timeout around a
// call that succeeds.
func BenchmarkPipelineSuccess(b *testing.B) {
	b.Run("brownout", func(b *testing.B) {
		p := resilience.New(resilience.Config{
			RateLimit: ratelimit.NewTokenBucket(1e9, 1e7),
			Breaker:   breaker.New(breaker.Config{}),
			Retry:     retry.New(retry.Config{}),
			Timeout:   timeout.New(timeout.Config{Timeout: time.Second}),
		})
		parallel(b, func() { _ = p.Do(ctx, ok) })
	})
	b.Run("failsafe-go", func(b *testing.B) {
		// failsafe-go lists policies outermost first.
		ex := fs.With[any](
			fsratelimiter.NewBursty[any](1e9, time.Second),
			fscb.NewBuilder[any]().WithFailureThresholdRatio(50, 100).Build(),
			fsretry.NewWithDefaults[any](),
			fstimeout.New[any](time.Second),
		)
		run := func() error { return nil }
		parallel(b, func() { _ = ex.Run(run) })
	})
}
