package resilience

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/brownout-io/brownout/sdk/breaker"
	"github.com/brownout-io/brownout/sdk/bulkhead"
	"github.com/brownout-io/brownout/sdk/ratelimit"
	"github.com/brownout-io/brownout/sdk/resilience/clock"
	"github.com/brownout-io/brownout/sdk/retry"
	"github.com/brownout-io/brownout/sdk/timeout"
)

var errDown = errors.New("dependency down")

func noSleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

func full(clk clock.Clock, rate ratelimit.Limit, burst int) *Pipeline {
	return New(Config{
		RateLimit: ratelimit.NewTokenBucket(rate, burst, ratelimit.WithClock(clk)),
		Breaker:   breaker.New(breaker.Config{MinimumCalls: 2, Clock: clk}),
		Bulkhead:  bulkhead.New(bulkhead.Config{MaxConcurrent: 4}),
		Retry:     retry.New(retry.Config{MaxAttempts: 3, Sleep: noSleep}),
		Timeout:   timeout.New(timeout.Config{Name: "dep", Timeout: time.Second, Clock: clk}),
	})
}

func TestOrder(t *testing.T) {
	clk := clock.NewManual(time.Hour)
	p := full(clk, 1, 10)
	attempts := 0
	fail := func(context.Context) error { attempts++; return errDown }

	// Retry runs inside the breaker: one logical call = 3 attempts = one
	// breaker outcome.
	err := p.Do(context.Background(), fail)
	if !errors.Is(err, errDown) || attempts != 3 {
		t.Fatalf("err %v after %d attempts", err, attempts)
	}
	if m := p.breaker.Metrics(); m.Calls != 1 || m.Failures != 1 {
		t.Fatalf("breaker saw %+v", m)
	}
	p.Do(context.Background(), fail) // second failure: 2/2 ≥ 50%, opens
	attempts = 0
	if err := p.Do(context.Background(), fail); !errors.Is(err, breaker.ErrOpen) || attempts != 0 {
		t.Fatalf("open breaker: err %v, %d attempts", err, attempts)
	}

	// The limiter runs first: once it refuses, the breaker is not asked.
	for i := 0; i < 10; i++ {
		p.Do(context.Background(), fail)
	}
	rejected := p.breaker.Metrics().Rejected
	if err := p.Do(context.Background(), fail); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("want ErrRateLimited, got %v", err)
	}
	if p.breaker.Metrics().Rejected != rejected {
		t.Fatal("breaker consulted for a rate-limited call")
	}
}

// Each attempt gets its own timeout; a timed-out attempt is retried and the
// error names the timeout layer.
func TestTimeoutPerAttempt(t *testing.T) {
	clk := clock.NewManual(time.Hour)
	p := New(Config{
		Retry: retry.New(retry.Config{MaxAttempts: 3, Sleep: noSleep,
			Retryable: func(error) bool { return true }}),
		Timeout: timeout.New(timeout.Config{Name: "dep", Timeout: 100 * time.Millisecond, Clock: clk}),
	})
	attempts := 0
	err := p.Do(context.Background(), func(ctx context.Context) error {
		attempts++
		if attempts < 3 {
			clk.Advance(200 * time.Millisecond)
			return ctx.Err()
		}
		return nil
	})
	if err != nil || attempts != 3 {
		t.Fatalf("err %v attempts %d", err, attempts)
	}
	attempts = 0
	err = p.Do(context.Background(), func(ctx context.Context) error {
		attempts++
		clk.Advance(200 * time.Millisecond)
		return ctx.Err()
	})
	if layer, ok := timeout.ExpiredLayer(err); !ok || layer != "dep" || attempts != 3 {
		t.Fatalf("err %v attempts %d", err, attempts)
	}
}

func TestBulkheadRejectionDoesNotCount(t *testing.T) {
	clk := clock.NewManual(time.Hour)
	bh := bulkhead.New(bulkhead.Config{MaxConcurrent: 1})
	br := breaker.New(breaker.Config{MinimumCalls: 1, Clock: clk})
	p := New(Config{Breaker: br, Bulkhead: bh})
	bh.TryAcquire()
	if err := p.Do(context.Background(), func(context.Context) error { return nil }); !errors.Is(err, bulkhead.ErrRejected) {
		t.Fatalf("got %v", err)
	}
	if br.Metrics().Calls != 0 {
		t.Fatal("rejected call counted by the breaker")
	}
	bh.Release()
	func() {
		defer func() { recover() }()
		p.Do(context.Background(), func(context.Context) error { panic("boom") })
	}()
	if bh.InUse() != 0 {
		t.Fatalf("after panic: slot leaked, in use %d", bh.InUse())
	}
}

// The success path allocates only the timeout stage's context, which fn may
// keep (timeout.Layer.Run).
func TestSuccessPathAllocatesOnlyTheContext(t *testing.T) {
	p := full(nil, ratelimit.Inf, 1)
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	if n := testing.AllocsPerRun(1000, func() { _ = p.Do(ctx, fn) }); n != 1 {
		t.Fatalf("%v allocs, want 1", n)
	}
}

func BenchmarkPipelineSuccess(b *testing.B) {
	p := New(Config{
		RateLimit: ratelimit.NewTokenBucket(1e12, 1<<30),
		Breaker:   breaker.New(breaker.Config{}),
		Retry:     retry.New(retry.Config{}),
		Timeout:   timeout.New(timeout.Config{Timeout: time.Second}),
	})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = p.Do(ctx, fn)
	}
}
