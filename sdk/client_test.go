package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brownout-io/brownout/sdk/component"
	"github.com/brownout-io/brownout/sdk/wire"
)

// unreachable is a base URL nothing listens on.
const unreachable = "http://127.0.0.1:1"

// quiet keeps the background poller out of tests that drive it by hand.
func quiet(c *config) { c.pollEvery = time.Hour }

// tick runs one poll by hand.
func (c *Client) tick() {
	c.pollBreakGlass()
	c.mu.Lock()
	c.recomputeLocked()
	c.mu.Unlock()
}

func TestConnectValidates(t *testing.T) {
	for _, tc := range []struct{ base, service, instance string }{
		{"ftp://x", "a", "b"},
		{"http://", "a", "b"},
		{"http://h:1", "", "b"},
		{"http://h:1", "Checkout", "b"},
		{"http://h:1", "a", "-b"},
		{"http://h:1", "a", strings.Repeat("x", 65)},
	} {
		_, err := Connect(context.Background(), tc.base, tc.service, tc.instance)
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Connect(%q, %q, %q) = %v, want ErrInvalidArgument", tc.base, tc.service, tc.instance, err)
		}
	}
	if _, err := Connect(context.Background(), unreachable, "a", "b", WithReportInterval(time.Millisecond)); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("tiny report interval accepted: %v", err)
	}
}

func TestControllerURLs(t *testing.T) {
	ws, post, err := controllerURLs("https://ctl.example:8443/brownout/", "checkout", "c-1")
	if err != nil {
		t.Fatal(err)
	}
	if want := "wss://ctl.example:8443/brownout/api/v1/subscribe?instance=c-1&service=checkout"; ws != want {
		t.Errorf("ws = %s, want %s", ws, want)
	}
	if want := "https://ctl.example:8443/brownout/api/v1/reports"; post != want {
		t.Errorf("post = %s, want %s", post, want)
	}
}

func TestConnectReturnsAtOnceAndServesDefaults(t *testing.T) {
	start := time.Now()
	c := mustConnect(t, "http://192.0.2.1:9", fastOpts(quiet),
		WithDefaults(LevelReduced, map[string]bool{"analytics": true}))
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("Connect took %v", d)
	}
	st := c.State()
	if st.Source != SourceDefaults || st.Level != LevelReduced || !c.Enabled("analytics") || c.Enabled("unknown") {
		t.Fatalf("state = %+v", st)
	}
}

func TestReadsDoNotAllocate(t *testing.T) {
	c := mustConnect(t, unreachable, fastOpts(quiet), WithDefaults(0, map[string]bool{"analytics": true}))
	var sink bool
	var lvl Level
	allocs := testing.AllocsPerRun(1000, func() {
		sink = c.Enabled("analytics") && !c.Enabled("missing")
		lvl = c.Level()
		_ = c.State()
	})
	if allocs != 0 {
		t.Fatalf("reads allocate %v times per run", allocs)
	}
	if !sink || lvl != LevelFull {
		t.Fatal("unexpected values")
	}
	var nilClient *Client
	if nilClient.Enabled("analytics") || nilClient.Level() != LevelFull {
		t.Fatal("nil client must read as defaults-free FULL")
	}
}

func TestUnknownFlagsFallBackToDefaults(t *testing.T) {
	f := newFakeController(t)
	c := mustConnect(t, f.srv.URL, WithToken("secret"), fastOpts(),
		WithDefaults(0, map[string]bool{"only_local": true, "analytics": false}))
	recvAck(t, f)
	if !c.Enabled("analytics") {
		t.Error("controller's flag must win over the default")
	}
	if !c.Enabled("only_local") {
		t.Error("a flag the controller does not name must fall back to the default")
	}
	if c.Enabled("nowhere") {
		t.Error("a flag nobody names must be false")
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	small := []byte(`{"n":"` + strings.Repeat("a", 10) + `"}`)
	big := []byte(`{"n":"` + strings.Repeat("b", 1<<20) + `"}`)
	if err := writeFileAtomic(path, small); err != nil {
		t.Fatal(err)
	}
	// A reader racing with writers sees one complete version or the other.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			data := small
			if i%2 == 0 {
				data = big
			}
			if err := writeFileAtomic(path, data); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 200 {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(b) {
			t.Fatalf("torn read: %d bytes", len(b))
		}
	}
	close(stop)
	wg.Wait()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left temporary files: %v", entries)
	}
}

func TestStateFileRejected(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"corrupt":       `{"format":1,"state":`,
		"other-service": `{"format":1,"state":{"service":"billing","version":3,"level":2}}`,
		"bad-level":     `{"format":1,"state":{"service":"checkout","version":3,"level":9}}`,
		"future-format": `{"format":99,"state":{"service":"checkout","version":3,"level":2}}`,
	} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(content), 0o600)
		c := mustConnect(t, unreachable, fastOpts(quiet), WithStateFile(path))
		if st := c.State(); st.Source != SourceDefaults || st.Version != 0 {
			t.Errorf("%s: state = %+v, want defaults", name, st)
		}
	}
}

func TestStalenessFallsToLevel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	// What a previous run learned: level 0 now, and the flags of level 2.
	err := saveState(path, &remembered{
		State: wire.Frame{Service: "checkout", Version: 7, Level: 0, Flags: map[string]bool{"analytics": true, "search": true}},
		LevelFlags: map[Level]map[string]bool{
			0: {"analytics": true, "search": true},
			2: {"analytics": false, "search": true},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := mustConnect(t, unreachable, fastOpts(quiet, func(c *config) { c.clock = clock }),
		WithStateFile(path), WithStalenessPolicy(FallTo(LevelEssential, time.Minute)),
		WithLevelFlags(LevelMaintenance, map[string]bool{"search": false}))

	clock.Advance(59 * time.Second)
	c.tick()
	if st := c.State(); st.Level != LevelFull || st.Source != SourceFile {
		t.Fatalf("before the limit: %+v", st)
	}
	clock.Advance(time.Second)
	c.tick()
	st := c.State()
	if st.Level != LevelEssential || st.Source != SourceStale || st.ControllerLevel != LevelFull || st.Version != 7 {
		t.Fatalf("after the limit: %+v", st)
	}
	if st.Enabled("analytics") || !st.Enabled("search") {
		t.Fatalf("stale level must serve the remembered flags of level 2: %v", st.Flags)
	}
}

func TestStalenessNeverLowersLevel(t *testing.T) {
	clock := &fakeClock{now: time.Unix(0, 0)}
	c := mustConnect(t, unreachable, fastOpts(quiet, func(c *config) { c.clock = clock }),
		WithDefaults(LevelMaintenance, nil), WithStalenessPolicy(FallTo(LevelReduced, time.Second)))
	clock.Advance(time.Hour)
	c.tick()
	if st := c.State(); st.Level != LevelMaintenance || st.Source != SourceDefaults {
		t.Fatalf("state = %+v", st)
	}
}

func TestStalenessEndsOnReconnect(t *testing.T) {
	f := newFakeController(t)
	f.set(func(f *fakeController) { f.status = 503 })
	clock := &fakeClock{now: time.Unix(0, 0)}
	c := mustConnect(t, f.srv.URL, WithToken("secret"), fastOpts(quiet, func(c *config) { c.clock = clock }),
		WithStalenessPolicy(FallTo(LevelEssential, time.Minute)))
	clock.Advance(2 * time.Minute)
	c.tick()
	if c.Level() != LevelEssential {
		t.Fatalf("level = %v, want ESSENTIAL while unreachable", c.Level())
	}
	f.set(func(f *fakeController) { f.status = 0 })
	recvAck(t, f)
	if st := c.State(); st.Level != LevelFull || st.Source != SourceController {
		t.Fatalf("after reconnect: %+v", st)
	}
}

func TestBreakGlassEnv(t *testing.T) {
	var env atomic.Value
	env.Store("")
	c := mustConnect(t, unreachable, fastOpts(quiet, func(c *config) {
		c.getenv = func(k string) string {
			if k != "BROWNOUT_FORCE_LEVEL" {
				return ""
			}
			return env.Load().(string)
		}
	}), WithDefaults(0, map[string]bool{"analytics": true}),
		WithLevelFlags(LevelMaintenance, map[string]bool{"analytics": false}))
	if c.Level() != LevelFull {
		t.Fatal("forced without a switch")
	}
	env.Store("3")
	c.tick()
	if st := c.State(); st.Level != LevelMaintenance || st.Source != SourceForced || st.Enabled("analytics") {
		t.Fatalf("forced state = %+v", st)
	}
	env.Store("banana")
	c.tick()
	if st := c.State(); st.Level != LevelFull || st.Source != SourceDefaults {
		t.Fatalf("an invalid value must force nothing: %+v", st)
	}
}

func TestBreakGlassEnvAtConnect(t *testing.T) {
	t.Setenv("BROWNOUT_FORCE_LEVEL", "2")
	c, err := Connect(context.Background(), unreachable, "checkout", "c-1", WithReportInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Level() != LevelEssential {
		t.Fatalf("level = %v, want ESSENTIAL from the environment", c.Level())
	}
}

func TestBreakGlassFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "force")
	f := newFakeController(t)
	c := mustConnect(t, f.srv.URL, WithToken("secret"), WithForceFile(path), fastOpts())
	recvAck(t, f)

	changes := make(chan State, 10)
	c.OnChange(func(_, s State) { changes <- s })
	os.WriteFile(path, []byte("ESSENTIAL\n"), 0o600)
	for forced := false; !forced; {
		select {
		case s := <-changes:
			if s.Source != SourceForced {
				continue // the controller's first state, delivered late
			}
			if s.Level != LevelEssential || s.ControllerLevel != LevelFull {
				t.Fatalf("forced state = %+v", s)
			}
			forced = true
		case <-time.After(5 * time.Second):
			t.Fatal("break-glass file not picked up")
		}
	}
	// The controller's changes keep arriving underneath.
	f.push(func(s *wire.Frame) { s.Version, s.Level = 2, 1 })
	recvAck(t, f)
	if st := c.State(); st.Level != LevelEssential || st.ControllerLevel != LevelReduced {
		t.Fatalf("state = %+v", st)
	}
	os.Remove(path)
	eventually(t, "release", func() bool { return c.State().Source == SourceController })
	if c.Level() != LevelReduced {
		t.Fatalf("level after release = %v", c.Level())
	}
}

func TestBackoffFullJitter(t *testing.T) {
	cfg := backoffConfig{initial: 100 * time.Millisecond, max: time.Second}
	b := newBackoff(cfg, rand.New(rand.NewPCG(1, 2)))
	ceilings := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, c := range ceilings {
		c *= time.Millisecond
		if got := b.ceiling(); got != c {
			t.Fatalf("attempt %d: ceiling %v, want %v", i, got, c)
		}
		if d := b.next(); d < 0 || d >= c {
			t.Fatalf("attempt %d: wait %v outside [0, %v)", i, d, c)
		}
	}
	b.reset()
	if got := b.ceiling(); got != cfg.initial {
		t.Fatalf("after reset: ceiling %v", got)
	}
	// Same seed, same waits: the jitter is reproducible in tests.
	b1 := newBackoff(cfg, rand.New(rand.NewPCG(7, 7)))
	b2 := newBackoff(cfg, rand.New(rand.NewPCG(7, 7)))
	var sum time.Duration
	for range 1000 {
		d1, d2 := b1.next(), b2.next()
		if d1 != d2 {
			t.Fatal("seeded backoffs differ")
		}
		sum += d1
	}
	// Capped at 1s with full jitter, the mean wait tends to 500ms.
	if mean := sum / 1000; mean < 400*time.Millisecond || mean > 600*time.Millisecond {
		t.Fatalf("mean wait %v, want about 500ms", mean)
	}
}

func TestRingDropsOldest(t *testing.T) {
	r := newRing(3)
	for i := range 5 {
		r.push(Report{Requests: int64(i)})
	}
	n, dropped := r.stats()
	if n != 3 || dropped != 2 {
		t.Fatalf("buffered %d dropped %d, want 3 and 2", n, dropped)
	}
	for want := int64(2); want < 5; want++ {
		got, ok := r.peek()
		if !ok || got.Requests != want {
			t.Fatalf("peek = %v %v, want %d", got.Requests, ok, want)
		}
		r.pop()
	}
	if _, ok := r.peek(); ok {
		t.Fatal("ring not empty")
	}
}

func TestReportBufferDropsAreCounted(t *testing.T) {
	c := mustConnect(t, unreachable, fastOpts(quiet), WithReportInterval(100*time.Millisecond), WithReportBuffer(2))
	eventually(t, "drops", func() bool { return c.Stats().ReportsDropped >= 2 })
	if s := c.Stats(); s.ReportsBuffered != 2 {
		t.Fatalf("stats = %+v", s)
	}
}

type fakeComponent struct{ n int }

func (f fakeComponent) ComponentState() component.State {
	m := make(map[string]float64, f.n)
	for i := range f.n {
		m[string(rune('a'+i%26))+strings.Repeat("x", i/26)] = float64(i)
	}
	return component.State{Kind: "breaker", State: "open", Metrics: m}
}

type panicComponent struct{}

func (panicComponent) ComponentState() component.State { panic("broken") }

func TestComponentsInReports(t *testing.T) {
	c := mustConnect(t, unreachable, fastOpts(quiet))
	if err := c.Register("db", fakeComponent{n: 40}); err != nil {
		t.Fatal(err)
	}
	if err := c.Register("bad", panicComponent{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Register("Bad Name", fakeComponent{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad name: %v", err)
	}
	r := c.buildReport()
	db, ok := r.Components["db"]
	if !ok || db.Kind != "breaker" || db.State != "open" || len(db.Metrics) != component.MaxMetrics {
		t.Fatalf("components = %+v", r.Components)
	}
	clean := sanitizeComponent(component.State{Kind: strings.Repeat("k", 70), Metrics: map[string]float64{
		"ok": 1, "": 2, strings.Repeat("m", 65): 3, "nan": math.NaN(), "inf": math.Inf(1)}})
	if len(clean.Kind) != 64 || len(clean.Metrics) != 1 || clean.Metrics["ok"] != 1 {
		t.Fatalf("sanitized = %+v", clean)
	}
	if _, ok := r.Components["bad"]; ok {
		t.Fatal("a panicking component must be left out")
	}
	for i := len(c.components); i < component.MaxComponents; i++ {
		if err := c.Register("c"+strings.Repeat("x", i), fakeComponent{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Register("one-too-many", fakeComponent{}); !errors.Is(err, ErrTooManyComponents) {
		t.Fatalf("over the limit: %v", err)
	}
	c.Unregister("bad")
	if err := c.Register("one-too-many", fakeComponent{}); err != nil {
		t.Fatal(err)
	}
}

func TestCallbacksInOrderAndCoalesced(t *testing.T) {
	f := newFakeController(t)
	c := mustConnect(t, f.srv.URL, WithToken("secret"), fastOpts())
	recvAck(t, f)

	type call struct {
		cb       int
		old, new uint64
	}
	var mu sync.Mutex
	var calls []call
	release := make(chan struct{})
	var blocked sync.Once
	c.OnChange(func(o, n State) {
		blocked.Do(func() { <-release }) // the first call is slow
		mu.Lock()
		calls = append(calls, call{1, o.Version, n.Version})
		mu.Unlock()
	})
	c.OnChange(func(o, n State) {
		mu.Lock()
		calls = append(calls, call{2, o.Version, n.Version})
		mu.Unlock()
	})
	remove := c.OnChange(func(o, n State) { t.Error("removed callback called") })
	remove()
	c.OnChange(func(State, State) { panic("a bad callback") })

	for v := uint64(2); v <= 20; v++ {
		f.push(func(s *wire.Frame) { s.Version = v; s.Level = wire.Level(v % 4) })
		if got := recvAck(t, f); got != v {
			t.Fatalf("ack %d, want %d: a slow callback must not hold up the connection", got, v)
		}
	}
	if c.State().Version != 20 {
		t.Fatalf("version = %d", c.State().Version)
	}
	close(release)
	eventually(t, "last change delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(calls) > 0 && calls[len(calls)-1].new == 20
	})
	mu.Lock()
	defer mu.Unlock()
	if len(calls)%2 != 0 {
		t.Fatalf("calls = %v", calls)
	}
	prev := uint64(1)
	for i := 0; i < len(calls); i += 2 {
		a, b := calls[i], calls[i+1]
		if a.cb != 1 || b.cb != 2 || a.old != b.old || a.new != b.new {
			t.Fatalf("callbacks out of order: %v", calls)
		}
		if a.old != prev || a.new <= a.old {
			t.Fatalf("chain broken at %v: %v", a, calls)
		}
		prev = a.new
	}
	if len(calls)/2 >= 19 {
		t.Logf("no coalescing happened (%d deliveries)", len(calls)/2)
	}
}

func TestOversizedReportFits(t *testing.T) {
	r := Report{Components: map[string]component.State{}}
	for i := range component.MaxComponents {
		m := make(map[string]float64, component.MaxMetrics)
		for j := range component.MaxMetrics {
			m[fmt.Sprintf("%s%02d", strings.Repeat("m", 60), j)] = 1.0 / 3
		}
		r.Components[fmt.Sprintf("component-%02d", i)] = component.State{Kind: "breaker", Metrics: m}
	}
	fitFrame(&r, slog.New(slog.DiscardHandler))
	b, _ := json.Marshal(wire.ReportFrame{Type: wire.TypeReport, Report: r})
	if len(b) > wire.MaxClientFrame || len(r.Components) == 0 || len(r.Components) == component.MaxComponents {
		t.Fatalf("frame %d bytes with %d components", len(b), len(r.Components))
	}
	if _, ok := r.Components["component-00"]; !ok {
		t.Fatal("the first components by name must be kept")
	}
}
