package sdk

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/brownout-io/brownout/sdk/wire"
	"github.com/coder/websocket"
)

// fakeController speaks the subscribe protocol well enough to test the
// transport before, and independently of, the real controller.
type fakeController struct {
	tb  testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	token    string
	status   int // non-zero: refuse upgrades with this status
	retry    string
	state    wire.Frame
	conns    map[*websocket.Conn]context.CancelFunc
	versions []string // version query parameter of each subscribe
	silent   bool     // stop reading (and so answering pings) after the first state

	acks    chan uint64
	reports chan Report
	errs    chan string
}

func newFakeController(tb testing.TB) *fakeController {
	tb.Helper()
	f := &fakeController{
		tb:      tb,
		token:   "secret",
		conns:   make(map[*websocket.Conn]context.CancelFunc),
		acks:    make(chan uint64, 100),
		reports: make(chan Report, 1000),
		errs:    make(chan string, 100),
		state: wire.Frame{
			Type: "state", Service: "checkout", Version: 1, Level: 0, LevelName: "FULL",
			Flags: map[string]bool{"analytics": true, "recommendations": true},
			Cause: "initial", ChangedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	tb.Cleanup(f.close)
	return f
}

func (f *fakeController) close() {
	f.closeAll(websocket.StatusGoingAway)
	f.srv.Close()
}

func (f *fakeController) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != wire.SubscribePath {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	status, retry, token := f.status, f.retry, f.token
	f.versions = append(f.versions, r.URL.Query().Get("version"))
	f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+token {
		status = http.StatusUnauthorized
	}
	if status != 0 {
		if retry != "" {
			w.Header().Set("Retry-After", retry)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(`{"error":{"code":"refused","message":"refused by test"}}`))
		return
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{wire.Subprotocol}})
	if err != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	f.mu.Lock()
	f.conns[conn] = cancel
	st := f.state
	silent := f.silent
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.conns, conn)
		f.mu.Unlock()
		conn.CloseNow()
	}()

	if v := r.URL.Query().Get("version"); v == strconv.FormatUint(st.Version, 10) {
		f.send(ctx, conn, wire.Frame{Type: "unchanged", Service: st.Service, Version: st.Version})
	} else {
		f.send(ctx, conn, st)
	}
	if silent {
		<-ctx.Done()
		return
	}
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return
		}
		var m struct {
			Type    string `json:"type"`
			Version uint64 `json:"version"`
			Report
		}
		if err := json.Unmarshal(data, &m); err != nil {
			offer(f.errs, err.Error())
			continue
		}
		switch m.Type {
		case "ack":
			offer(f.acks, m.Version)
		case "report":
			offer(f.reports, m.Report)
		default:
			offer(f.errs, "unknown type "+m.Type)
		}
	}
}

func (f *fakeController) send(ctx context.Context, conn *websocket.Conn, fr wire.Frame) {
	b, _ := json.Marshal(fr)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn.Write(ctx, websocket.MessageText, b)
}

// push makes st the current state and sends it to every subscriber.
func (f *fakeController) push(mut func(*wire.Frame)) wire.Frame {
	f.mu.Lock()
	st := f.state
	st.Flags = cloneFlags(st.Flags)
	mut(&st)
	f.state = st
	conns := make([]*websocket.Conn, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	for _, c := range conns {
		f.send(context.Background(), c, st)
	}
	return st
}

func (f *fakeController) closeAll(code websocket.StatusCode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c, cancel := range f.conns {
		go func() {
			c.Close(code, "test")
			cancel()
		}()
	}
}

func (f *fakeController) set(fn func(f *fakeController)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeController) subscribes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.versions...)
}

// offer records a frame unless the test stopped draining the channel, so
// that the server never blocks.
func offer[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

func cloneFlags(m map[string]bool) map[string]bool {
	out := make(map[string]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// fastOpts shortens the client's timers for tests.
func fastOpts(fn ...func(*config)) Option {
	return func(c *config) error {
		c.backoff = backoffConfig{initial: 10 * time.Millisecond, max: 50 * time.Millisecond, stable: time.Hour}
		c.pollEvery = 20 * time.Millisecond
		c.pingEvery = 50 * time.Millisecond
		c.deadAfter = 300 * time.Millisecond
		c.dialTimeout = 2 * time.Second
		c.sampler = fixedSampler{cpu: 12.5, mem: 40}
		c.getenv = func(string) string { return "" }
		if c.logger == nil {
			c.logger = slog.New(slog.DiscardHandler)
		}
		for _, f := range fn {
			f(c)
		}
		return nil
	}
}

type fixedSampler struct{ cpu, mem float64 }

func (s fixedSampler) sample() (float64, float64) { return s.cpu, s.mem }

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func recvAck(tb testing.TB, f *fakeController) uint64 {
	tb.Helper()
	select {
	case v := <-f.acks:
		return v
	case <-time.After(5 * time.Second):
		tb.Fatal("no ack")
		return 0
	}
}

func mustConnect(tb testing.TB, base string, opts ...Option) *Client {
	tb.Helper()
	c, err := Connect(context.Background(), base, "checkout", "checkout-1", opts...)
	if err != nil {
		tb.Fatalf("Connect: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
