package controller_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/controller"
	"github.com/brownout-io/brownout/internal/health"
	"github.com/brownout-io/brownout/internal/hub"
	"github.com/brownout-io/brownout/internal/storage/sqlite"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openStore(tb testing.TB) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "b.db"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func newController(tb testing.TB, db *sqlite.DB, clk *clock) (*controller.Controller, *hub.Hub) {
	tb.Helper()
	h := hub.New(hub.Config{Now: clk.Now}, nil)
	c := controller.New(controller.Config{Now: clk.Now}, db, nil, h, nil, nil)
	if err := c.Load(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return c, h
}

func report(service, instance string, cpu float64) health.Report {
	m := 10.0
	return health.Report{Service: service, Instance: instance, CPUPercent: &cpu, MemoryPercent: &m, Requests: 100}
}

func level(t *testing.T, c *controller.Controller, svc string) (int, uint64) {
	t.Helper()
	v, err := c.Service(svc)
	if err != nil {
		t.Fatal(err)
	}
	return v.Level, v.Version
}

// The whole hysteresis cycle through the controller with a fake clock:
// escalate at once, hold while between exit and enter, step down one level
// per cooldown, and record each change with its inputs.
func TestHysteresisThroughTheController(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	db := openStore(t)
	c, _ := newController(t, db, clk)

	feed := func(cpu float64, d time.Duration) {
		for el := time.Duration(0); el < d; el += time.Second {
			if err := c.Ingest(ctx, report("api", "api-1", cpu)); err != nil {
				t.Fatal(err)
			}
			c.Tick(ctx)
			clk.Add(time.Second)
		}
	}
	feed(20, 5*time.Second)
	if l, _ := level(t, c, "api"); l != 0 {
		t.Fatalf("calm: level %d", l)
	}
	// The first report at 95 % CPU enters MAINTENANCE in the tick that
	// follows it, although the window's mean is still 32 %.
	feed(95, time.Second)
	l, v3 := level(t, c, "api")
	if l != 3 {
		t.Fatalf("one tick after a report at 95%% CPU: level %d", l)
	}
	feed(95, 30*time.Second)
	if l, v := level(t, c, "api"); l != 3 || v != v3 {
		t.Fatalf("while CPU stays at 95%%: level %d v%d (was v%d)", l, v, v3)
	}
	feed(85, 40*time.Second) // below enter(3)=90 but above exit(3)=80: holds
	if l, v := level(t, c, "api"); l != 3 || v != v3 {
		t.Fatalf("between exit and enter: level %d v%d (was v%d)", l, v, v3)
	}
	// Calm: each step down comes exactly one cooldown (60 s) after every
	// signal went below the current level's exit threshold.
	for _, step := range []struct{ from, exit float64 }{{3, 80}, {2, 70}, {1, 60}} {
		var calmAt time.Time
		for i := 0; i < 200; i++ {
			if err := c.Ingest(ctx, report("api", "api-1", 10)); err != nil {
				t.Fatal(err)
			}
			c.Tick(ctx)
			v, _ := c.Service("api")
			if calmAt.IsZero() && v.Signals.CPUPercent < step.exit {
				calmAt = clk.Now()
			}
			if v.Level < int(step.from) {
				if v.Level != int(step.from)-1 {
					t.Fatalf("stepped from %v to %d", step.from, v.Level)
				}
				if el := clk.Now().Sub(calmAt); el != 60*time.Second {
					t.Fatalf("step down from %v came %v after calm, want 60s", step.from, el)
				}
				break
			}
			clk.Add(time.Second)
		}
		if l, _ := level(t, c, "api"); l != int(step.from)-1 {
			t.Fatalf("no step down from %v", step.from)
		}
	}
	page, err := db.ListLevelChanges(ctx, brownout.Filter{Service: "api", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for i := len(page.Items) - 1; i >= 0; i-- {
		got = append(got, page.Items[i].ToLevel)
		var in struct {
			Decision struct {
				Trigger struct {
					Signal string  `json:"signal"`
					Kind   string  `json:"kind"`
					Value  float64 `json:"value"`
				} `json:"trigger"`
			} `json:"decision"`
		}
		if err := json.Unmarshal(page.Items[i].Inputs, &in); err != nil || in.Decision.Trigger.Signal == "" {
			t.Fatalf("change %+v lacks its trigger: %s", page.Items[i], page.Items[i].Inputs)
		}
	}
	if want := []int{3, 2, 1, 0}; !equal(got, want) { // straight to 3 on the latest report, down one step per cooldown
		t.Fatalf("recorded levels %v, want %v", got, want)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Controller and hub together, under -race: many subscribers, a stalled
// one among them; the controller's commits reach every reader in version
// order, the read model sees their acks, and the stalled subscriber holds
// only the newest snapshot.
func TestCommitsReachSubscribersInOrder(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	db := openStore(t)
	c, h := newController(t, db, clk)
	if err := c.Ingest(ctx, report("hub", "seed", 10)); err != nil {
		t.Fatal(err)
	}
	const readers = 300
	stalled, err := h.Subscribe("hub", "stalled", "tok", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unsubscribe(stalled)

	type result struct {
		last uint64
		bad  bool
	}
	results := make([]result, readers)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < readers; i++ {
		sub, err := h.Subscribe("hub", "r"+itoa(i), "tok", 0, "")
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func(i int, sub *hub.Subscriber) {
			defer wg.Done()
			defer h.Unsubscribe(sub)
			for {
				select {
				case <-sub.Ready():
					m := sub.Take()
					if m == nil {
						continue
					}
					if m.Version <= results[i].last {
						results[i].bad = true
					}
					results[i].last = m.Version
					h.Ack(sub, m.Version)
				case <-stop:
					return
				}
			}
		}(i, sub)
	}
	l := 0
	start := time.Now()
	const changes = 100
	for i := 0; i < changes; i++ {
		l = (l + 1) % 4
		if _, err := c.CreateOverride(ctx, controller.OverrideRequest{Service: "hub", Level: &l, Reason: "r"}, brownout.Actor{ID: "tok_t", Name: "t"}, false); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d changes to %d subscribers in %v", changes, readers+1, time.Since(start))
	_, final := level(t, c, "hub")
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Progress is read through the controller's read model, not the
		// readers' results, which belong to their goroutines until wg.Wait.
		v, _ := c.Service("hub")
		done := v.Convergence.OnCurrent
		if done == readers {
			if v.Subscribers != readers+1 {
				t.Fatalf("read model shows %d subscribers, want %d", v.Subscribers, readers+1)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d readers reached v%d", done, readers, final)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for i, r := range results {
		if r.bad || r.last != final {
			t.Fatalf("reader %d: went back %v, last v%d, want v%d", i, r.bad, r.last, final)
		}
	}
	if m := stalled.Take(); m == nil || m.Version != final {
		t.Fatalf("stalled subscriber's pending message: %+v, want v%d", m, final)
	}
}

func itoa(i int) string {
	b := []byte{}
	if i == 0 {
		return "0"
	}
	for i > 0 {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
	}
	return string(b)
}

// A report that reaches a threshold above the level is evaluated at once,
// not at the next tick: with ticks an hour apart, the level still follows
// the report within moments.
func TestEscalatingReportDoesNotWaitForTheTick(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	db := openStore(t)
	h := hub.New(hub.Config{Now: clk.Now}, nil)
	c := controller.New(controller.Config{Now: clk.Now, EvalInterval: time.Hour}, db, nil, h, nil, nil)
	if err := c.Load(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := c.Ingest(ctx, report("api", "api-1", 30)); err != nil {
		t.Fatal(err)
	}
	waitLevel := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			l, _ := level(t, c, "api")
			if l == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("level %d 10s after the report, want %d", l, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	clk.Add(time.Second)
	if err := c.Ingest(ctx, report("api", "api-1", 75)); err != nil {
		t.Fatal(err)
	}
	waitLevel(1)
	// The next kick comes at least EvalInterval/10 later (six minutes
	// here): a report at 95 % is evaluated by then, at the latest at the
	// tick.
	clk.Add(time.Second)
	if err := c.Ingest(ctx, report("api", "api-1", 95)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if l, _ := level(t, c, "api"); l != 1 {
		t.Fatalf("a second kick within the spacing was evaluated: level %d", l)
	}
	c.Tick(ctx)
	waitLevel(3)
}
