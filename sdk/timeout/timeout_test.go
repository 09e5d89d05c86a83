package timeout

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/brownout-io/brownout/sdk/resilience/clock"
)

func TestBudgetDerivation(t *testing.T) {
	clk := clock.NewManual(time.Hour)
	parent, cancel := context.WithDeadline(context.Background(), clock.Time(clk.Nanotime()).Add(time.Second))
	defer cancel()
	cases := []struct {
		cfg  Config
		want time.Duration
		ok   bool
	}{
		{Config{}, time.Second, true},
		{Config{Fraction: 0.5}, 500 * time.Millisecond, true},
		{Config{Reserve: 100 * time.Millisecond}, 900 * time.Millisecond, true},
		{Config{Fraction: 0.8, Reserve: 50 * time.Millisecond}, 750 * time.Millisecond, true},
		{Config{Timeout: 200 * time.Millisecond, Fraction: 0.5}, 200 * time.Millisecond, true},
		{Config{Reserve: 2 * time.Second}, -time.Second, false},
		{Config{MinBudget: 2 * time.Second}, time.Second, false},
	}
	for i, c := range cases {
		c.cfg.Clock = clk
		got, ok := New(c.cfg).Budget(parent)
		if got != c.want || ok != c.ok {
			t.Errorf("case %d: budget %v ok %v, want %v %v", i, got, ok, c.want, c.ok)
		}
	}
	// Without a parent deadline only Timeout bounds the budget.
	if got, ok := New(Config{Timeout: time.Second, Fraction: 0.1, Clock: clk}).Budget(context.Background()); got != time.Second || !ok {
		t.Errorf("no parent deadline: %v", got)
	}
}

// Each layer's deadline is strictly inside its parent's.
func TestNestedDeadlinesShrink(t *testing.T) {
	clk := clock.NewManual(time.Hour)
	outer := New(Config{Name: "handler", Timeout: time.Second, Reserve: 100 * time.Millisecond, Clock: clk})
	inner := New(Config{Name: "db", Fraction: 0.5, Reserve: 50 * time.Millisecond, Clock: clk})
	var outerDL, innerDL time.Time
	err := outer.Run(context.Background(), func(ctx context.Context) error {
		outerDL, _ = ctx.Deadline()
		return inner.Run(ctx, func(ctx context.Context) error {
			innerDL, _ = ctx.Deadline()
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	start := clock.Time(clk.Nanotime())
	if outerDL.Sub(start) != time.Second || innerDL.Sub(start) != 450*time.Millisecond {
		t.Fatalf("outer %v inner %v", outerDL.Sub(start), innerDL.Sub(start))
	}
}

// The layer whose deadline passed is the one named in the error.
func TestReportsExpiredLayer(t *testing.T) {
	clk := clock.NewManual(time.Hour)
	outer := New(Config{Name: "handler", Timeout: time.Second, Clock: clk})
	inner := New(Config{Name: "inventory", Fraction: 0.5, Clock: clk})

	// The inner call overruns its 500ms; the outer still has time.
	err := outer.Run(context.Background(), func(ctx context.Context) error {
		return inner.Run(ctx, func(ctx context.Context) error {
			clk.Advance(600 * time.Millisecond)
			return ctx.Err()
		})
	})
	if layer, ok := ExpiredLayer(err); !ok || layer != "inventory" {
		t.Fatalf("want inventory, got %v", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("ExceededError must match context.DeadlineExceeded")
	}

	// The inner call is fast; the work after it overruns the outer budget.
	err = outer.Run(context.Background(), func(ctx context.Context) error {
		if err := inner.Run(ctx, func(context.Context) error { return nil }); err != nil {
			return err
		}
		clk.Advance(2 * time.Second)
		return ctx.Err()
	})
	if layer, ok := ExpiredLayer(err); !ok || layer != "handler" {
		t.Fatalf("want handler, got %v", err)
	}

	// A result that arrives in time is not turned into a timeout.
	err = outer.Run(context.Background(), func(ctx context.Context) error {
		return errors.New("bad request")
	})
	if _, ok := ExpiredLayer(err); ok || err.Error() != "bad request" {
		t.Fatalf("got %v", err)
	}
}

func TestNotStartedWhenBudgetTooSmall(t *testing.T) {
	clk := clock.NewManual(time.Hour)
	parent, cancel := context.WithDeadline(context.Background(), clock.Time(clk.Nanotime()).Add(100*time.Millisecond))
	defer cancel()
	l := New(Config{Name: "search", MinBudget: 200 * time.Millisecond, Clock: clk})
	called := false
	err := l.Run(parent, func(context.Context) error { called = true; return nil })
	var e *ExceededError
	if called || !errors.As(err, &e) || !e.NotStarted || e.Layer != "search" {
		t.Fatalf("called %v err %v", called, err)
	}
	if _, _, err := l.WithTimeout(parent); err == nil {
		t.Fatal("WithTimeout must refuse too small a budget")
	}
}

// With the real clock, a call that blocks on Done is released by the
// deadline and reported as this layer's timeout; the parent's cancellation
// also reaches it.
func TestDoneFiresOnDeadlineAndParentCancel(t *testing.T) {
	l := New(Config{Name: "rpc", Timeout: 20 * time.Millisecond, Clock: clock.Precise{}})
	err := l.Run(context.Background(), func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if layer, ok := ExpiredLayer(err); !ok || layer != "rpc" {
		t.Fatalf("got %v", err)
	}
	parent, cancel := context.WithCancel(context.Background())
	long := New(Config{Name: "long", Timeout: time.Hour})
	go func() { time.Sleep(5 * time.Millisecond); cancel() }()
	err = long.Run(parent, func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	// Recycled contexts start clean.
	for i := 0; i < 100; i++ {
		if err := long.Run(context.Background(), func(ctx context.Context) error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			default:
				return nil
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWithTimeoutCause(t *testing.T) {
	l := New(Config{Name: "cache", Timeout: time.Millisecond, Clock: clock.Precise{}})
	ctx, cancel, err := l.WithTimeout(context.Background())
	defer cancel()
	if err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
	if layer, ok := ExpiredLayer(context.Cause(ctx)); !ok || layer != "cache" {
		t.Fatalf("cause %v", context.Cause(ctx))
	}
}

// By default Run allocates its context (one object, never pooled); with
// UnsafeReuseContext it allocates nothing.
func TestRunAllocations(t *testing.T) {
	ctx := context.Background()
	fn := func(ctx context.Context) error { _, _ = ctx.Deadline(); return ctx.Err() }
	for _, c := range []struct {
		reuse bool
		want  float64
	}{{false, 1}, {true, 0}} {
		l := New(Config{Name: "x", Timeout: time.Second, UnsafeReuseContext: c.reuse})
		l.Run(ctx, fn)
		if n := testing.AllocsPerRun(1000, func() { _ = l.Run(ctx, fn) }); n != c.want {
			t.Fatalf("UnsafeReuseContext=%v: %v allocs, want %v", c.reuse, n, c.want)
		}
	}
}

type ctxKey struct{}

// A goroutine that keeps Run's context past Run (go audit(ctx), a logger
// holding ctx.Value) sees a context.Context that honours its contract: its
// own values and deadline, done with Canceled once Run returned, never
// another call's.
func TestContextKeptPastRunStaysValid(t *testing.T) {
	l := New(Config{Name: "x", Timeout: time.Hour})
	type kept struct {
		ctx      context.Context
		deadline time.Time
	}
	var all []kept
	for i := 0; i < 100; i++ {
		parent := context.WithValue(context.Background(), ctxKey{}, i)
		_ = l.Run(parent, func(ctx context.Context) error {
			d, _ := ctx.Deadline()
			all = append(all, kept{ctx, d})
			return nil
		})
	}
	// Other calls run meanwhile, as they would in a server.
	for i := 0; i < 1000; i++ {
		_ = l.Run(context.WithValue(context.Background(), ctxKey{}, -1), func(context.Context) error { return nil })
	}
	for i, k := range all {
		if got := k.ctx.Value(ctxKey{}); got != i {
			t.Fatalf("kept context %d: Value = %v, want %d", i, got, i)
		}
		if d, ok := k.ctx.Deadline(); !ok || !d.Equal(k.deadline) {
			t.Fatalf("kept context %d: deadline %v, want %v", i, d, k.deadline)
		}
		if err := k.ctx.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("kept context %d: Err = %v after Run returned, want Canceled", i, err)
		}
		select {
		case <-k.ctx.Done():
		default:
			t.Fatalf("kept context %d: Done not closed after Run returned", i)
		}
	}

	// A goroutine started by fn, reading the context later.
	got := make(chan any, 1)
	release := make(chan struct{})
	parent := context.WithValue(context.Background(), ctxKey{}, "audit")
	_ = l.Run(parent, func(ctx context.Context) error {
		go func() {
			<-release
			<-ctx.Done()
			got <- ctx.Value(ctxKey{})
		}()
		return nil
	})
	_ = l.Run(context.WithValue(context.Background(), ctxKey{}, "other"), func(context.Context) error { return nil })
	close(release)
	if v := <-got; v != "audit" {
		t.Fatalf("the goroutine read %v, want its own call's value", v)
	}
}

// A context whose deadline passed before Run returned ends with
// DeadlineExceeded, as a standard library context would.
func TestContextEndsWithItsFirstError(t *testing.T) {
	clk := clock.NewManual(0)
	l := New(Config{Name: "x", Timeout: time.Second, Clock: clk})
	var kept context.Context
	_ = l.Run(context.Background(), func(ctx context.Context) error {
		kept = ctx
		clk.Advance(2 * time.Second)
		return nil
	})
	if err := kept.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want DeadlineExceeded", err)
	}
}

func BenchmarkRun(b *testing.B) {
	l := New(Config{Name: "x", Timeout: time.Second})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = l.Run(ctx, fn)
	}
}

// A context derived from Run's context and never canceled must not leave a
// goroutine behind once Run returns: the recycled context's Done channel is
// closed on return.
func TestDerivedContextsEndWithRun(t *testing.T) {
	l := New(Config{Name: "x", Timeout: time.Hour})
	before := runtime.NumGoroutine()
	var cancels []context.CancelFunc
	for i := 0; i < 50; i++ {
		l.Run(context.Background(), func(ctx context.Context) error {
			child, cancel := context.WithCancel(ctx)
			cancels = append(cancels, cancel) // deliberately not called
			_ = child
			return nil
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left behind", runtime.NumGoroutine()-before)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, c := range cancels {
		c()
	}
}

// A watched context is closed when Run returns and never handed out again;
// an unwatched one used late (against the contract) reports itself done
// instead of crashing.
func TestRunContextAfterReturn(t *testing.T) {
	l := New(Config{Name: "x", Timeout: time.Hour})
	var watched context.Context
	l.Run(context.Background(), func(ctx context.Context) error {
		watched = ctx
		_ = ctx.Done()
		return nil
	})
	select {
	case <-watched.Done():
	default:
		t.Fatal("watched context still open after Run returned")
	}
	for i := 0; i < 100; i++ {
		l.Run(context.Background(), func(ctx context.Context) error {
			if ctx == watched {
				t.Fatal("a watched context was reused")
			}
			return nil
		})
	}
	var late context.Context
	l.Run(context.Background(), func(ctx context.Context) error { late = ctx; return nil })
	if late.Err() == nil {
		t.Fatal("late Err() = nil")
	}
	<-late.Done()
	_ = late.Value("k")
}

// Done, AfterFunc and Err called from a goroutine fn started, racing with
// Run's return: whichever comes first, the channel closes, AfterFunc's
// function runs, and the context ends with Canceled.
func TestWatchRacingRunReturn(t *testing.T) {
	l := New(Config{Name: "x", Timeout: time.Hour})
	for i := 0; i < 2000; i++ {
		var wg sync.WaitGroup
		wg.Add(2)
		after := make(chan struct{})
		l.Run(context.Background(), func(ctx context.Context) error {
			go func() {
				defer wg.Done()
				if i%2 == 0 {
					<-ctx.Done()
				} else {
					context.AfterFunc(ctx, func() { close(after) })
					<-after
				}
				if err := ctx.Err(); err != context.Canceled {
					t.Errorf("call %d: Err() = %v after Done, want Canceled", i, err)
				}
			}()
			go func() { defer wg.Done(); _ = ctx.Err() }()
			return nil
		})
		ok := make(chan struct{})
		go func() { wg.Wait(); close(ok) }()
		select {
		case <-ok:
		case <-time.After(10 * time.Second):
			t.Fatalf("call %d: a watcher of Run's context never saw it end", i)
		}
	}
}
