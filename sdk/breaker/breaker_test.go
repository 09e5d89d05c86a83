package breaker

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brownout-io/brownout/sdk/resilience/clock"
)

var errBoom = errors.New("boom")

func call(b *Breaker, err error) error {
	t, aerr := b.Allow()
	if aerr != nil {
		return aerr
	}
	t.Done(err)
	return nil
}

func must(t *testing.T, b *Breaker, want State) {
	t.Helper()
	if got := b.State(); got != want {
		t.Fatalf("state = %v, want %v", got, want)
	}
}

func TestCountWindowOpensAtThreshold(t *testing.T) {
	b := New(Config{WindowSize: 10, Buckets: 5, MinimumCalls: 4, FailureRateThreshold: 0.5, Clock: clock.NewManual(0)})
	call(b, errBoom)
	call(b, errBoom)
	call(b, errBoom)
	must(t, b, Closed) // below MinimumCalls
	call(b, nil)
	call(b, nil)
	call(b, nil)
	call(b, nil)
	must(t, b, Closed) // 3/7
	call(b, errBoom)   // 4/8 = 0.5
	must(t, b, Open)
	if err := call(b, nil); !errors.Is(err, ErrOpen) {
		t.Fatalf("want ErrOpen, got %v", err)
	}
}

// A count window holds exactly the last WindowSize outcomes: each call
// pushes out the one WindowSize calls before it.
func TestCountWindowSlidesOneCallAtATime(t *testing.T) {
	b := New(Config{WindowSize: 10, MinimumCalls: 1, FailureRateThreshold: 0.4, Clock: clock.NewManual(0)})
	b.ForceClosed() // count, never trip, so we can watch the window
	call(b, errBoom)
	call(b, errBoom)
	for i := 0; i < 7; i++ {
		call(b, nil)
	}
	if m := b.Metrics(); m.Calls != 9 || m.Failures != 2 {
		t.Fatalf("9 calls: %+v", m)
	}
	call(b, nil)
	if m := b.Metrics(); m.Calls != 10 || m.Failures != 2 {
		t.Fatalf("10 calls: %+v", m)
	}
	call(b, nil) // the first failure leaves
	if m := b.Metrics(); m.Calls != 10 || m.Failures != 1 {
		t.Fatalf("11 calls: %+v", m)
	}
	call(b, nil) // the second
	if m := b.Metrics(); m.Calls != 10 || m.Failures != 0 {
		t.Fatalf("12 calls: %+v", m)
	}
	call(b, errBoom)
	if m := b.Metrics(); m.Calls != 10 || m.Failures != 1 {
		t.Fatalf("a new failure: %+v", m)
	}
}

// A count window of N calls with MinimumCalls N opens after N failures in a
// row (the old bucket ring dropped a bucket first and never held N calls).
func TestCountWindowFullOfFailuresOpens(t *testing.T) {
	for _, n := range []int{1, 5, 10, 100, 1000} {
		b := New(Config{WindowSize: n, MinimumCalls: n, FailureRateThreshold: 1, Clock: clock.NewManual(0)})
		for i := 0; i < n-1; i++ {
			call(b, errBoom)
		}
		if b.State() != Closed {
			t.Fatalf("n=%d: open after %d failures", n, n-1)
		}
		call(b, errBoom)
		if b.State() != Open {
			t.Fatalf("n=%d: %v after %d failures in a row, want open", n, b.State(), n)
		}
	}
	// A minimum above the window could never be met: it is lowered.
	b := New(Config{WindowSize: 10, MinimumCalls: 50, FailureRateThreshold: 1, Clock: clock.NewManual(0)})
	for i := 0; i < 10; i++ {
		call(b, errBoom)
	}
	if b.State() != Open {
		t.Fatalf("MinimumCalls > WindowSize: %v after 10 failures, want open", b.State())
	}
}

// Random traces through the count window and through a reference model
// (a plain slice of the last N outcomes) open at the same call.
func TestCountWindowMatchesReferenceModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 300; trial++ {
		n := 1 + rng.IntN(40)
		minCalls := 1 + rng.IntN(n)
		thr := float64(1+rng.IntN(20)) / 20
		pFail := rng.Float64()
		b := New(Config{WindowSize: n, MinimumCalls: minCalls, FailureRateThreshold: thr, Clock: clock.NewManual(0)})
		var ref []bool // last n outcomes, true = failed
		for i := 0; i < 500; i++ {
			failed := rng.Float64() < pFail
			if failed {
				call(b, errBoom)
			} else {
				call(b, nil)
			}
			ref = append(ref, failed)
			if len(ref) > n {
				ref = ref[1:]
			}
			fails := 0
			for _, f := range ref {
				if f {
					fails++
				}
			}
			wantOpen := failed && len(ref) >= minCalls && float64(fails)/float64(len(ref)) >= thr
			m := b.Metrics()
			if m.Calls != int64(len(ref)) || m.Failures != int64(fails) {
				t.Fatalf("trial %d call %d: window %d calls %d failures, reference %d, %d", trial, i, m.Calls, m.Failures, len(ref), fails)
			}
			if got := m.State == Open; got != wantOpen {
				t.Fatalf("trial %d (n=%d min=%d thr=%.2f) call %d: open=%v, reference %v (%d/%d)", trial, n, minCalls, thr, i, got, wantOpen, fails, len(ref))
			}
			if got := m.State == Open; got {
				b.Reset()
				ref = ref[:0]
			}
		}
	}
}

// ConsecutiveFailures opens after that many failures in a row; a success
// resets the run; ignored errors leave it alone.
func TestConsecutiveFailures(t *testing.T) {
	b := New(Config{ConsecutiveFailures: 3, MinimumCalls: 1000, WindowSize: 1000, Clock: clock.NewManual(0)})
	call(b, errBoom)
	call(b, errBoom)
	call(b, nil)
	call(b, errBoom)
	call(b, errBoom)
	call(b, context.Canceled) // ignored: neither a failure nor a success
	if b.State() != Closed {
		t.Fatalf("%v after runs of 2", b.State())
	}
	call(b, errBoom)
	if b.State() != Open {
		t.Fatalf("%v after 3 failures in a row, want open", b.State())
	}
	seed := SeedConfig("payments")
	if seed.ConsecutiveFailures != 5 || seed.OpenDuration != 60*time.Second {
		t.Fatalf("SeedConfig = %+v", seed)
	}
}

func TestTimeWindowBoundaries(t *testing.T) {
	clk := clock.NewManual(time.Hour)
	b := New(Config{Window: TimeWindow, WindowDuration: 10 * time.Second, Buckets: 10,
		MinimumCalls: 5, FailureRateThreshold: 0.5, Clock: clk})
	for i := 0; i < 4; i++ {
		call(b, errBoom)
	}
	clk.Advance(9 * time.Second) // failures at bucket 0, now in bucket 9: still inside
	if m := b.Metrics(); m.Calls != 4 {
		t.Fatalf("calls in window = %d, want 4", m.Calls)
	}
	clk.Advance(time.Second) // bucket 10: bucket 0 slid out
	if m := b.Metrics(); m.Calls != 0 {
		t.Fatalf("calls after window = %d, want 0", m.Calls)
	}
	call(b, errBoom) // 1 failure; old ones must not count
	must(t, b, Closed)
	for i := 0; i < 4; i++ {
		call(b, errBoom)
	}
	must(t, b, Open)
}

func TestHalfOpenCycle(t *testing.T) {
	clk := clock.NewManual(time.Hour)
	var events []Event
	b := New(Config{MinimumCalls: 1, OpenDuration: time.Second, HalfOpenProbes: 2,
		HalfOpenTimeout: 3 * time.Second, Clock: clk,
		OnStateChange: func(e Event) { events = append(events, e) }})
	call(b, errBoom)
	must(t, b, Open)
	clk.Advance(999 * time.Millisecond)
	if err := call(b, nil); !errors.Is(err, ErrOpen) {
		t.Fatal("admitted before OpenDuration")
	}
	clk.Advance(time.Millisecond)
	p1, err1 := b.Allow()
	p2, err2 := b.Allow()
	_, err3 := b.Allow()
	if err1 != nil || err2 != nil || !errors.Is(err3, ErrTooManyProbes) {
		t.Fatalf("probes: %v %v %v", err1, err2, err3)
	}
	must(t, b, HalfOpen)
	p1.Done(nil)
	must(t, b, HalfOpen)
	p2.Done(nil)
	must(t, b, Closed)

	// A failing probe reopens at once.
	call(b, errBoom)
	clk.Advance(time.Second)
	p, _ := b.Allow()
	p.Done(errBoom)
	must(t, b, Open)

	want := []State{Open, HalfOpen, Closed, Open, HalfOpen, Open}
	if len(events) != len(want) {
		t.Fatalf("events %v", events)
	}
	for i, e := range events {
		if e.To != want[i] {
			t.Fatalf("event %d to %v, want %v (%v)", i, e.To, want[i], events)
		}
		if i > 0 && e.Seq <= events[i-1].Seq {
			t.Fatal("Seq not increasing")
		}
	}
}

func TestAbandonGivesProbeBack(t *testing.T) {
	clk := clock.NewManual(time.Hour)
	b := New(Config{MinimumCalls: 1, OpenDuration: time.Second, HalfOpenProbes: 1, Clock: clk})
	call(b, errBoom)
	clk.Advance(time.Second)
	p, _ := b.Allow()
	if _, err := b.Allow(); !errors.Is(err, ErrTooManyProbes) {
		t.Fatal("second probe admitted")
	}
	p.Abandon()
	p, err := b.Allow()
	if err != nil {
		t.Fatalf("abandoned slot not given back: %v", err)
	}
	p.Done(context.Canceled) // ignored outcome: slot given back too
	if p, err = b.Allow(); err != nil {
		t.Fatalf("canceled probe's slot not given back: %v", err)
	}
	p.Done(nil)
	must(t, b, Closed)
}

func TestHalfOpenTimeoutReopens(t *testing.T) {
	clk := clock.NewManual(time.Hour)
	b := New(Config{MinimumCalls: 1, OpenDuration: time.Second, HalfOpenProbes: 1,
		HalfOpenTimeout: 2 * time.Second, Clock: clk})
	call(b, errBoom)
	clk.Advance(time.Second)
	hung, err := b.Allow() // probe that never finishes
	if err != nil {
		t.Fatal(err)
	}
	must(t, b, HalfOpen)
	clk.Advance(2 * time.Second)
	must(t, b, Open) // timed out: back to open, not stuck
	hung.Done(nil)   // a late outcome from the old half-open period is ignored
	must(t, b, Open)
	clk.Advance(time.Second)
	p, err := b.Allow()
	if err != nil {
		t.Fatalf("new half-open period must admit a probe: %v", err)
	}
	p.Done(nil)
	must(t, b, Closed)
}

// 1000 goroutines race for probe slots: exactly N get one.
func TestHalfOpenAdmitsExactlyN(t *testing.T) {
	for _, n := range []int{1, 3, 17} {
		clk := clock.NewManual(time.Hour)
		b := New(Config{MinimumCalls: 1, OpenDuration: time.Second, HalfOpenProbes: n, Clock: clk})
		call(b, errBoom)
		clk.Advance(time.Second)
		var admitted, tooMany, open atomic.Int64
		var start, wg sync.WaitGroup
		start.Add(1)
		for g := 0; g < 1000; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start.Wait()
				_, err := b.Allow()
				switch {
				case err == nil:
					admitted.Add(1)
				case errors.Is(err, ErrTooManyProbes):
					tooMany.Add(1)
				case errors.Is(err, ErrOpen):
					open.Add(1)
				}
			}()
		}
		start.Done()
		wg.Wait()
		if admitted.Load() != int64(n) || tooMany.Load() != int64(1000-n) {
			t.Fatalf("N=%d: admitted %d, too many %d, open %d", n, admitted.Load(), tooMany.Load(), open.Load())
		}
	}
}

func TestCanceledNotCounted(t *testing.T) {
	b := New(Config{MinimumCalls: 1, Clock: clock.NewManual(0)})
	for i := 0; i < 50; i++ {
		call(b, context.Canceled)
	}
	must(t, b, Closed)
	call(b, context.DeadlineExceeded)
	must(t, b, Open)

	only := New(Config{MinimumCalls: 1, Clock: clock.NewManual(0),
		IsFailure: func(err error) bool { return errors.Is(err, errBoom) }})
	call(only, errors.New("client error"))
	must(t, only, Closed)
	call(only, errBoom)
	must(t, only, Open)
}

func TestSlowCalls(t *testing.T) {
	clk := clock.NewManual(time.Hour)
	b := New(Config{MinimumCalls: 4, SlowCallDuration: time.Second, SlowCallRateThreshold: 0.5, Clock: clk})
	for i := 0; i < 3; i++ {
		tk, _ := b.Allow()
		clk.Advance(2 * time.Second)
		tk.Done(nil)
		must(t, b, Closed) // below MinimumCalls
	}
	tk, _ := b.Allow()
	clk.Advance(2 * time.Second)
	tk.Done(nil)
	must(t, b, Open)
}

func TestOperatorModes(t *testing.T) {
	b := New(Config{MinimumCalls: 1, Clock: clock.NewManual(0)})
	b.ForceOpen()
	if err := call(b, nil); !errors.Is(err, ErrOpen) {
		t.Fatal("forced open admitted")
	}
	b.ForceClosed()
	for i := 0; i < 10; i++ {
		if err := call(b, errBoom); err != nil {
			t.Fatal(err)
		}
	}
	must(t, b, ForcedClosed)
	if b.Metrics().Failures != 10 {
		t.Fatal("forced closed must still count")
	}
	b.Disable()
	call(b, errBoom)
	must(t, b, Disabled)
	b.Reset()
	must(t, b, Closed)
	if b.Metrics().Calls != 0 {
		t.Fatal("Reset must empty the window")
	}
}

// The callback runs with no lock held: calling back into the breaker,
// including causing another transition, must not deadlock.
func TestCallbackMayReenter(t *testing.T) {
	var b *Breaker
	var seen []State
	b = New(Config{MinimumCalls: 1, Clock: clock.NewManual(0), OnStateChange: func(e Event) {
		seen = append(seen, b.State())
		_ = b.Metrics()
		if e.To == Open {
			b.Reset()
		}
	}})
	done := make(chan struct{})
	go func() { call(b, errBoom); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("deadlock in state-change callback")
	}
	must(t, b, Closed)
}

func TestExecute(t *testing.T) {
	b := New(Config{MinimumCalls: 1, Clock: clock.NewManual(0)})
	if err := b.Execute(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	b.Execute(context.Background(), func(context.Context) error { return errBoom })
	must(t, b, Open)
	if err := b.Execute(context.Background(), func(context.Context) error { return nil }); !errors.Is(err, ErrOpen) {
		t.Fatal("want ErrOpen")
	}
	cs := b.ComponentState()
	if cs.Kind != "breaker" || cs.State != "open" || cs.Metrics["failure_rate"] != 0.5 || cs.Metrics["rejected"] != 1 {
		t.Fatalf("component state %+v", cs)
	}
}

func TestSuccessPathAllocatesNothing(t *testing.T) {
	for _, w := range []WindowType{CountWindow, TimeWindow} {
		b := New(Config{Window: w, SlowCallDuration: time.Second})
		ctx := context.Background()
		fn := func(context.Context) error { return nil }
		if n := testing.AllocsPerRun(1000, func() {
			tk, _ := b.Allow()
			tk.Done(nil)
			_ = b.Execute(ctx, fn)
		}); n != 0 {
			t.Fatalf("window %d: %v allocs per call", w, n)
		}
	}
}

// Many goroutines failing at once: the breaker trips after about
// MinimumCalls failures and admits nothing more while open, whatever the
// interleaving.
func TestConcurrentFailuresTripOnce(t *testing.T) {
	clk := clock.NewManual(time.Hour)
	var opened atomic.Int64
	b := New(Config{WindowSize: 100, MinimumCalls: 10, FailureRateThreshold: 0.5,
		OpenDuration: time.Minute, Clock: clk,
		OnStateChange: func(e Event) {
			if e.To == Open {
				opened.Add(1)
			}
		}})
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				if tok, err := b.Allow(); err == nil {
					admitted.Add(1)
					tok.Done(errBoom)
				}
			}
		}()
	}
	wg.Wait()
	must(t, b, Open)
	// 10 failures trip it; each of the 16 goroutines may have had one call
	// in flight at that moment.
	if admitted.Load() > 10+16 {
		t.Fatalf("admitted %d calls; the breaker should have opened after ~10", admitted.Load())
	}
	if opened.Load() != 1 {
		t.Fatalf("opened %d times, want 1", opened.Load())
	}
	if m := b.Metrics(); m.Rejected != uint64(16*1000-admitted.Load()) {
		t.Fatalf("rejected %d, admitted %d", m.Rejected, admitted.Load())
	}
}

func TestConcurrentHammer(t *testing.T) {
	b := New(Config{Window: TimeWindow, MinimumCalls: 50, OpenDuration: time.Millisecond, HalfOpenProbes: 3})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				var err error
				if (i+g)%3 == 0 {
					err = errBoom
				}
				call(b, err)
			}
		}(g)
	}
	wg.Wait()
	_ = b.Metrics()
}

func BenchmarkClosedSuccess(b *testing.B) {
	for _, w := range []struct {
		name string
		t    WindowType
	}{{"count", CountWindow}, {"time", TimeWindow}} {
		b.Run(w.name, func(b *testing.B) {
			br := New(Config{Window: w.t})
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					tk, _ := br.Allow()
					tk.Done(nil)
				}
			})
		})
	}
}

func TestFastmod(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, d := range []uint64{1, 2, 3, 7, 10, 100, 1000, 12345, 1 << 24} {
		m := ^uint64(0)/d + 1
		for i := 0; i < 100000; i++ {
			x := rng.Uint32()
			if i < 1000 {
				x = uint32(i)
			}
			if got, want := fastmod(x, m, d), uint64(x)%d; got != want {
				t.Fatalf("fastmod(%d, %d) = %d, want %d", x, d, got, want)
			}
		}
		if got, want := fastmod(^uint32(0), m, d), uint64(^uint32(0))%d; got != want {
			t.Fatalf("fastmod(max, %d) = %d, want %d", d, got, want)
		}
	}
}
