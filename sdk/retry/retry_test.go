package retry

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/brownout-io/brownout/sdk/resilience/clock"
)

var errTransient = errors.New("transient")

// fakeSleep records waits and advances a manual clock instead of sleeping.
type fakeSleep struct {
	mu    sync.Mutex
	clk   *clock.Manual
	waits []time.Duration
}

func (f *fakeSleep) sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	f.waits = append(f.waits, d)
	f.mu.Unlock()
	if f.clk != nil {
		f.clk.Advance(d)
	}
	return ctx.Err()
}

func failN(n int, err error) (func(context.Context) error, *int) {
	calls := 0
	return func(context.Context) error {
		calls++
		if calls <= n {
			return err
		}
		return nil
	}, &calls
}

func TestSucceedsAfterRetries(t *testing.T) {
	fs := &fakeSleep{}
	r := New(Config{MaxAttempts: 4, BaseDelay: 10 * time.Millisecond, Jitter: NoJitter, Sleep: fs.sleep})
	fn, calls := failN(3, errTransient)
	if err := r.Do(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
	if *calls != 4 {
		t.Fatalf("calls = %d", *calls)
	}
	want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}
	for i, w := range want {
		if fs.waits[i] != w {
			t.Fatalf("waits %v, want %v", fs.waits, want)
		}
	}
}

func TestBackoffShapes(t *testing.T) {
	base := 100 * time.Millisecond
	cases := []struct {
		b    Backoff
		want []time.Duration
	}{
		{Constant, []time.Duration{base, base, base, base}},
		{Linear, []time.Duration{base, 2 * base, 3 * base, 4 * base}},
		{Exponential, []time.Duration{base, 2 * base, 4 * base, 5 * base}}, // capped at MaxDelay
	}
	for _, c := range cases {
		fs := &fakeSleep{}
		r := New(Config{MaxAttempts: 5, Backoff: c.b, BaseDelay: base, MaxDelay: 5 * base, Jitter: NoJitter, Sleep: fs.sleep})
		fn, _ := failN(100, errTransient)
		err := r.Do(context.Background(), fn)
		var re *Error
		if !errors.As(err, &re) || re.Attempts != 5 || !errors.Is(err, ErrAttemptsExhausted) || !errors.Is(err, errTransient) {
			t.Fatalf("backoff %d: err %v", c.b, err)
		}
		for i, w := range c.want {
			if fs.waits[i] != w {
				t.Fatalf("backoff %d: waits %v, want %v", c.b, fs.waits, c.want)
			}
		}
	}
}

// With a seeded source the full-jitter waits of retry n are uniform on
// [0, base·2^(n-1)]: check bounds and that mean and spread match the
// uniform distribution's.
func TestFullJitterDistribution(t *testing.T) {
	base := 64 * time.Millisecond
	r := New(Config{BaseDelay: base, MaxDelay: time.Hour, Rand: rand.New(rand.NewPCG(1, 2))})
	for n := 1; n <= 4; n++ {
		hi := float64(base) * math.Pow(2, float64(n-1))
		const samples = 20000
		var sum, sumSq float64
		for i := 0; i < samples; i++ {
			w := float64(r.wait(n, 0))
			if w < 0 || w > hi {
				t.Fatalf("retry %d: wait %v outside [0, %v]", n, time.Duration(w), time.Duration(hi))
			}
			sum += w
			sumSq += w * w
		}
		mean := sum / samples
		sd := math.Sqrt(sumSq/samples - mean*mean)
		if math.Abs(mean-hi/2) > 0.02*hi {
			t.Fatalf("retry %d: mean %.0f, want ≈ %.0f", n, mean, hi/2)
		}
		if math.Abs(sd-hi/math.Sqrt(12)) > 0.02*hi {
			t.Fatalf("retry %d: sd %.0f, want ≈ %.0f", n, sd, hi/math.Sqrt(12))
		}
	}
}

func TestDecorrelatedAndEqualJitterBounds(t *testing.T) {
	base, maxD := 10*time.Millisecond, time.Second
	r := New(Config{BaseDelay: base, MaxDelay: maxD, Jitter: DecorrelatedJitter, Rand: rand.New(rand.NewPCG(3, 4))})
	prev := int64(base)
	grew := false
	for i := 0; i < 10000; i++ {
		w := r.wait(i+1, prev)
		if w < int64(base) || w > min(int64(maxD), 3*prev) {
			t.Fatalf("decorrelated wait %v outside [%v, min(%v, 3×%v)]", time.Duration(w), base, maxD, time.Duration(prev))
		}
		if w > int64(maxD)/2 {
			grew = true
		}
		prev = w
	}
	if !grew {
		t.Fatal("decorrelated jitter never approached MaxDelay")
	}
	e := New(Config{BaseDelay: base, Jitter: EqualJitter, Backoff: Constant, Rand: rand.New(rand.NewPCG(5, 6))})
	for i := 0; i < 1000; i++ {
		if w := e.wait(1, 0); w < int64(base)/2 || w > int64(base) {
			t.Fatalf("equal jitter wait %v", time.Duration(w))
		}
	}
}

func TestClassification(t *testing.T) {
	r := New(Config{Sleep: (&fakeSleep{}).sleep, Retryable: func(err error) bool { return !errors.Is(err, errFatal) }})
	fn, calls := failN(10, errFatal)
	if err := r.Do(context.Background(), fn); err != errFatal || *calls != 1 {
		t.Fatalf("non-retryable: err %v after %d calls", err, *calls)
	}
	fn, calls = failN(10, Permanent(errTransient))
	if err := r.Do(context.Background(), fn); err != errTransient || *calls != 1 {
		t.Fatalf("permanent: err %v after %d calls", err, *calls)
	}
	d := New(Config{Sleep: (&fakeSleep{}).sleep})
	fn, calls = failN(10, context.DeadlineExceeded)
	if err := d.Do(context.Background(), fn); err != context.DeadlineExceeded || *calls != 1 {
		t.Fatalf("context error retried: %v after %d", err, *calls)
	}
}

var errFatal = errors.New("fatal")

type throttled struct{ after time.Duration }

func (throttled) Error() string               { return "throttled" }
func (e throttled) RetryAfter() time.Duration { return e.after }

func TestRetryAfterHint(t *testing.T) {
	fs := &fakeSleep{}
	r := New(Config{BaseDelay: time.Millisecond, Jitter: NoJitter, Sleep: fs.sleep})
	fn, _ := failN(1, throttled{2 * time.Second})
	if err := r.Do(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
	if fs.waits[0] != 2*time.Second {
		t.Fatalf("wait %v, want the 2s hint", fs.waits[0])
	}
}

func TestMaxElapsed(t *testing.T) {
	clk := clock.NewManual(time.Hour)
	fs := &fakeSleep{clk: clk}
	r := New(Config{MaxAttempts: 100, BaseDelay: time.Second, Backoff: Constant, Jitter: NoJitter,
		MaxElapsed: 3500 * time.Millisecond, Clock: clk, Sleep: fs.sleep})
	fn, calls := failN(100, errTransient)
	err := r.Do(context.Background(), fn)
	if !errors.Is(err, ErrElapsedExhausted) || *calls != 4 {
		t.Fatalf("err %v after %d calls (want 4: at 0s,1s,2s,3s)", err, *calls)
	}
}

func TestContextCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := New(Config{MaxAttempts: 10, BaseDelay: time.Hour, Backoff: Constant, Jitter: NoJitter})
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	fn, calls := failN(100, errTransient)
	err := r.Do(ctx, fn)
	if !errors.Is(err, context.Canceled) || *calls != 1 {
		t.Fatalf("err %v after %d calls", err, *calls)
	}
	// A wait longer than the remaining deadline is not started.
	dctx, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	fs := &fakeSleep{}
	r2 := New(Config{BaseDelay: time.Hour, Backoff: Constant, Jitter: NoJitter, Sleep: fs.sleep})
	if err := r2.Do(dctx, func(context.Context) error { return errTransient }); !errors.Is(err, context.DeadlineExceeded) || len(fs.waits) != 0 {
		t.Fatalf("err %v, waits %v", err, fs.waits)
	}
}

func TestBudgetExhaustion(t *testing.T) {
	b := NewBudget(BudgetConfig{Capacity: 20, RetryCost: 5, SuccessRefill: 1})
	fs := &fakeSleep{}
	r := New(Config{MaxAttempts: 3, Budget: b, Sleep: fs.sleep})
	total := 0
	fail := func(context.Context) error { total++; return errTransient }
	// 20 tokens pay for 4 retries; after that calls fail after one attempt.
	var exhausted int
	for i := 0; i < 10; i++ {
		if err := r.Do(context.Background(), fail); errors.Is(err, ErrBudgetExhausted) {
			exhausted++
		}
	}
	if total != 10+4 || b.Tokens() != 0 {
		t.Fatalf("attempts %d (want 14), tokens %d", total, b.Tokens())
	}
	if exhausted != 8 {
		t.Fatalf("budget-exhausted results %d, want 8", exhausted)
	}
	// First-attempt successes refill one token each.
	for i := 0; i < 5; i++ {
		r.Do(context.Background(), func(context.Context) error { return nil })
	}
	if b.Tokens() != 5 {
		t.Fatalf("tokens %d after 5 successes", b.Tokens())
	}
	// A success after a retry refunds that retry's cost; timeouts cost more.
	fn, _ := failN(1, context.DeadlineExceeded)
	rt := New(Config{Budget: b, Sleep: fs.sleep, Retryable: func(error) bool { return true }})
	if err := rt.Do(context.Background(), fn); !errors.Is(err, ErrBudgetExhausted) {
		t.Fatalf("timeout retry should cost 10 > 5 tokens: %v", err)
	}
	fn, _ = failN(1, errTransient)
	if err := rt.Do(context.Background(), fn); err != nil || b.Tokens() != 5 {
		t.Fatalf("err %v tokens %d (refund expected)", err, b.Tokens())
	}
	// Never above capacity.
	for i := 0; i < 100; i++ {
		b.Put(3)
	}
	if b.Tokens() != 20 {
		t.Fatalf("tokens %d above capacity", b.Tokens())
	}
	cs := r.ComponentState()
	if cs.Metrics["budget_tokens"] != 20 || cs.Kind != "retry" {
		t.Fatalf("%+v", cs)
	}
}

func TestBudgetConcurrent(t *testing.T) {
	b := NewBudget(BudgetConfig{Capacity: 100, RetryCost: 1})
	var wg sync.WaitGroup
	var mu sync.Mutex
	taken := 0
	for g := 0; g < 50; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if b.TryTake(1) {
					mu.Lock()
					taken++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if taken != 100 || b.Tokens() != 0 {
		t.Fatalf("taken %d, left %d", taken, b.Tokens())
	}
}

func TestSuccessPathAllocatesNothing(t *testing.T) {
	r := New(Config{Budget: NewBudget(BudgetConfig{}), MaxElapsed: time.Second})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	if n := testing.AllocsPerRun(1000, func() { _ = r.Do(ctx, fn) }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

func BenchmarkSuccess(b *testing.B) {
	r := New(Config{})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = r.Do(ctx, fn)
	}
}

// A caller-supplied backoff decides the base wait of every retry; it is
// capped at MaxDelay and jittered like the built-in ones.
func TestBackoffFunc(t *testing.T) {
	fib := func(n int) time.Duration {
		a, b := 1, 1
		for i := 1; i < n; i++ {
			a, b = b, a+b
		}
		return time.Duration(a) * 10 * time.Millisecond
	}
	fs := &fakeSleep{}
	r := New(Config{MaxAttempts: 7, BackoffFunc: fib, BaseDelay: 10 * time.Millisecond, MaxDelay: 70 * time.Millisecond, Jitter: NoJitter, Sleep: fs.sleep})
	fn, _ := failN(10, errTransient)
	_ = r.Do(context.Background(), fn)
	want := []time.Duration{10, 10, 20, 30, 50, 70} // 80 capped at MaxDelay
	if len(fs.waits) != len(want) {
		t.Fatalf("waits %v", fs.waits)
	}
	for i, w := range want {
		if fs.waits[i] != w*time.Millisecond {
			t.Fatalf("wait %d = %v, want %v (all: %v)", i+1, fs.waits[i], w*time.Millisecond, fs.waits)
		}
	}
	// Jitter still applies: full jitter stays within [0, backoff].
	j := New(Config{BackoffFunc: func(int) time.Duration { return time.Second }, Rand: rand.New(rand.NewPCG(1, 1))})
	for i := 0; i < 1000; i++ {
		if w := j.wait(1, 0); w < 0 || w > int64(time.Second) {
			t.Fatalf("jittered wait %v", time.Duration(w))
		}
	}
}

// Additive jitter adds [0, JitterMax] to the backoff: never less than it,
// and spread over the whole range.
func TestAdditiveJitter(t *testing.T) {
	base, jmax := 100*time.Millisecond, 50*time.Millisecond
	r := New(Config{BaseDelay: base, Backoff: Exponential, Jitter: AdditiveJitter, JitterMax: jmax, Rand: rand.New(rand.NewPCG(7, 8))})
	lo, hi := int64(math.MaxInt64), int64(0)
	for i := 0; i < 10000; i++ {
		w := r.wait(3, 0) // backoff 400ms
		if w < int64(4*base) || w > int64(4*base+jmax) {
			t.Fatalf("additive wait %v outside [400ms, 450ms]", time.Duration(w))
		}
		lo, hi = min(lo, w), max(hi, w)
	}
	if time.Duration(lo) > 4*base+jmax/20 || time.Duration(hi) < 4*base+jmax*19/20 {
		t.Fatalf("additive jitter spread [%v, %v], want most of [400ms, 450ms]", time.Duration(lo), time.Duration(hi))
	}
	// JitterMax defaults to BaseDelay.
	d := New(Config{BaseDelay: base, Backoff: Constant, Jitter: AdditiveJitter})
	for i := 0; i < 1000; i++ {
		if w := d.wait(1, 0); w < int64(base) || w > int64(2*base) {
			t.Fatalf("default additive wait %v", time.Duration(w))
		}
	}
}
