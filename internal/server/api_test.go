package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"

	"github.com/brownout-io/brownout/internal/servertest"
)

// report returns a report body for service/instance.
func report(service, instance string, cpu, mem float64, req, errs int) map[string]any {
	return map[string]any{"service": service, "instance": instance, "cpu_percent": cpu, "memory_percent": mem, "requests": req, "errors": errs}
}

type stateFrame struct {
	Type          string          `json:"type"`
	Service       string          `json:"service"`
	Version       uint64          `json:"version"`
	Level         int             `json:"level"`
	ComputedLevel int             `json:"computed_level"`
	Flags         map[string]bool `json:"flags"`
	Override      *struct {
		ID     string `json:"id"`
		Reason string `json:"reason"`
		Actor  string `json:"actor"`
	} `json:"override"`
	Cause   string `json:"cause"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

type subscriber struct {
	t    *testing.T
	c    *websocket.Conn
	resp *http.Response
}

func dial(t *testing.T, s *servertest.Server, token, service, instance string, version uint64) (*subscriber, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := strings.Replace(s.URL, "http://", "ws://", 1) + "/api/v1/subscribe?service=" + service + "&instance=" + instance
	if version > 0 {
		u += fmt.Sprintf("&version=%d", version)
	}
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	c, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h, Subprotocols: []string{"brownout.v1"}})
	if err != nil {
		return &subscriber{t: t, resp: resp}, err
	}
	t.Cleanup(func() { c.CloseNow() })
	return &subscriber{t: t, c: c, resp: resp}, nil
}

func mustDial(t *testing.T, s *servertest.Server, token, service, instance string) *subscriber {
	t.Helper()
	sub, err := dial(t, s, token, service, instance, 0)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return sub
}

func (s *subscriber) next(timeout time.Duration) (stateFrame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, data, err := s.c.Read(ctx)
	if err != nil {
		return stateFrame{}, err
	}
	var f stateFrame
	if err := json.Unmarshal(data, &f); err != nil {
		s.t.Fatalf("decode frame %s: %v", data, err)
	}
	return f, nil
}

// waitFor reads frames until pred holds, acking every state.
func (s *subscriber) waitFor(what string, pred func(stateFrame) bool) stateFrame {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		f, err := s.next(time.Until(deadline))
		if err != nil {
			s.t.Fatalf("waiting for %s: %v", what, err)
		}
		if f.Type == "state" {
			s.send(map[string]any{"type": "ack", "version": f.Version})
		}
		if pred(f) {
			return f
		}
	}
	s.t.Fatalf("timed out waiting for %s", what)
	return stateFrame{}
}

func (s *subscriber) send(v any) {
	s.t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.c.Write(ctx, websocket.MessageText, b); err != nil {
		s.t.Fatalf("write: %v", err)
	}
}

type service struct {
	Name          string `json:"name"`
	Level         int    `json:"level"`
	ComputedLevel int    `json:"computed_level"`
	Version       uint64 `json:"version"`
	Stale         bool   `json:"stale"`
	Signals       struct {
		CPU       float64 `json:"cpu_percent"`
		ErrorRate float64 `json:"error_rate"`
	} `json:"signals"`
	Instances []struct {
		Name      string `json:"name"`
		Version   uint64 `json:"version"`
		Connected bool   `json:"connected"`
		Stale     bool   `json:"stale"`
	} `json:"instances"`
	Convergence struct {
		Live      int `json:"live"`
		OnCurrent int `json:"on_current"`
	} `json:"convergence"`
}

func getService(t *testing.T, s *servertest.Server, name string) service {
	t.Helper()
	var svc service
	s.MustDo(t, "GET", "/api/v1/services/"+name, s.AdminToken, nil, 200, &svc)
	return svc
}

func eventually(t *testing.T, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if fn() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestControlLoopEndToEnd(t *testing.T) {
	s := servertest.Start(t)
	_, sdkTok := s.Token(t, "sdk", "checkout")

	s.MustDo(t, "POST", "/api/v1/reports", sdkTok, report("checkout", "c-1", 20, 30, 100, 0), 202, nil)
	sub := mustDial(t, s, sdkTok, "checkout", "c-1")
	first := sub.waitFor("initial state", func(f stateFrame) bool { return f.Type == "state" })
	if first.Level != 0 || !first.Flags["recommendations"] || first.Service != "checkout" {
		t.Fatalf("initial state: %+v", first)
	}

	// CPU at 92 %: straight to MAINTENANCE, flags all off.
	s.MustDo(t, "POST", "/api/v1/reports", sdkTok, report("checkout", "c-1", 92, 30, 100, 0), 202, nil)
	// The window mean of 20 and 92 is 56: still FULL. Two more high reports
	// lift the mean over 70 (REDUCED).
	for i := 0; i < 3; i++ {
		s.MustDo(t, "POST", "/api/v1/reports", sdkTok, report("checkout", "c-1", 95, 30, 100, 0), 202, nil)
	}
	up := sub.waitFor("escalation", func(f stateFrame) bool { return f.Type == "state" && f.Level > 0 })
	if up.Version <= first.Version || up.Cause != "signal" {
		t.Fatalf("escalation frame: %+v (first v%d)", up, first.Version)
	}
	if up.Flags["recommendations"] {
		t.Fatalf("recommendations still on at level %d", up.Level)
	}

	// Override pins level 0 and is pushed with who and why.
	var ov struct {
		ID    string `json:"id"`
		Actor string `json:"actor"`
	}
	s.MustDo(t, "POST", "/api/v1/overrides", s.AdminToken, map[string]any{"service": "checkout", "level": 0, "reason": "load test"}, 201, &ov)
	pinned := sub.waitFor("override", func(f stateFrame) bool { return f.Override != nil })
	if pinned.Level != 0 || pinned.ComputedLevel == 0 || pinned.Override.Reason != "load test" || pinned.Override.Actor != "admin" || pinned.Cause != "override" {
		t.Fatalf("override frame: %+v", pinned)
	}
	eventually(t, "ack recorded", func() bool {
		svc := getService(t, s, "checkout")
		return svc.Convergence.OnCurrent == 1 && svc.Convergence.Live == 1 && svc.Instances[0].Version == svc.Version
	})

	// Emergency beats the older service override (newest wins).
	s.MustDo(t, "POST", "/api/v1/emergency", s.AdminToken, map[string]any{"reason": "incident 42"}, 201, nil)
	em := sub.waitFor("emergency", func(f stateFrame) bool {
		return f.Level == 3 && f.Override != nil && f.Override.Reason == "incident 42"
	})
	s.MustDo(t, "DELETE", "/api/v1/emergency", s.AdminToken, nil, 200, nil)
	back := sub.waitFor("emergency end", func(f stateFrame) bool { return f.Override != nil && f.Override.ID == ov.ID })
	if back.Level != 0 || back.Version <= em.Version {
		t.Fatalf("after emergency: %+v", back)
	}
	s.MustDo(t, "DELETE", "/api/v1/overrides/"+ov.ID, s.AdminToken, nil, 200, nil)
	cleared := sub.waitFor("override cleared", func(f stateFrame) bool { return f.Override == nil })
	if cleared.Level != cleared.ComputedLevel || cleared.Level == 0 {
		t.Fatalf("after clear: %+v", cleared)
	}
	st, _ := s.Do(t, "DELETE", "/api/v1/overrides/"+ov.ID, s.AdminToken, nil)
	if st != http.StatusConflict && st != http.StatusNotFound {
		t.Fatalf("clearing twice: status %d", st)
	}

	// History has the escalation with its inputs and the override changes.
	var hist struct {
		Items []struct {
			Service   string          `json:"service"`
			FromLevel int             `json:"from_level"`
			ToLevel   int             `json:"to_level"`
			Cause     string          `json:"cause"`
			Inputs    json.RawMessage `json:"inputs"`
		} `json:"items"`
	}
	s.MustDo(t, "GET", "/api/v1/history/levels?service=checkout", s.AdminToken, nil, 200, &hist)
	var sawSignal, sawOverride bool
	for _, h := range hist.Items {
		if h.Cause == "signal" && h.FromLevel == 0 && h.ToLevel > 0 {
			sawSignal = strings.Contains(string(h.Inputs), `"cpu_percent"`) && strings.Contains(string(h.Inputs), `"threshold"`)
		}
		if h.Cause == "override" {
			sawOverride = true
		}
	}
	if !sawSignal || !sawOverride {
		t.Fatalf("history lacks the signal change with inputs or the override: %+v", hist.Items)
	}
	var audit struct {
		Items []struct {
			Actor, Action string
		} `json:"items"`
	}
	s.MustDo(t, "GET", "/api/v1/audit?actor=admin", s.AdminToken, nil, 200, &audit)
	actions := map[string]bool{}
	for _, a := range audit.Items {
		actions[a.Action] = true
	}
	for _, want := range []string{"override.create", "override.clear", "emergency.start", "emergency.end", "token.create"} {
		if !actions[want] {
			t.Errorf("audit lacks %s: %v", want, actions)
		}
	}
}

func TestOverrideExpiryIsPushed(t *testing.T) {
	s := servertest.Start(t)
	sub := mustDial(t, s, s.AdminToken, "search", "s-1")
	sub.waitFor("initial", func(f stateFrame) bool { return f.Type == "state" })
	s.MustDo(t, "POST", "/api/v1/overrides", s.AdminToken, map[string]any{"service": "*", "level": 2, "reason": "drill", "ttl": "1s"}, 201, nil)
	sub.waitFor("override", func(f stateFrame) bool { return f.Level == 2 })
	f := sub.waitFor("expiry", func(f stateFrame) bool { return f.Level == 0 })
	if f.Cause != "expiry" || f.Override != nil {
		t.Fatalf("expiry frame: %+v", f)
	}
}

func TestVersionsSurviveRestartAndUnchangedReconnect(t *testing.T) {
	s := servertest.Start(t)
	s.MustDo(t, "POST", "/api/v1/reports", s.AdminToken, report("pay", "p-0", 1, 1, 0, 0), 202, nil)
	for i := 0; i < 3; i++ {
		s.MustDo(t, "POST", "/api/v1/overrides", s.AdminToken, map[string]any{"service": "pay", "level": i + 1, "reason": "r"}, 201, nil)
	}
	before := getService(t, s, "pay").Version
	s.Kill(t)
	s.Restart(t)
	after := getService(t, s, "pay")
	if after.Version < before || after.Level != 3 {
		t.Fatalf("after restart: version %d (was %d), level %d", after.Version, before, after.Level)
	}
	// A client that already runs the current version gets one small frame.
	sub, err := dial(t, s, s.AdminToken, "pay", "p-1", after.Version)
	if err != nil {
		t.Fatal(err)
	}
	f, err := sub.next(5 * time.Second)
	if err != nil || f.Type != "unchanged" || f.Version != after.Version {
		t.Fatalf("reconnect frame: %+v %v", f, err)
	}
	s.MustDo(t, "POST", "/api/v1/overrides", s.AdminToken, map[string]any{"service": "pay", "level": 0, "reason": "r"}, 201, nil)
	f = sub.waitFor("change after unchanged", func(f stateFrame) bool { return f.Type == "state" })
	if f.Version <= after.Version {
		t.Fatalf("version went back: %d after %d", f.Version, after.Version)
	}
}

func TestRevokingTokenClosesItsConnections(t *testing.T) {
	s := servertest.Start(t)
	id, tok := s.Token(t, "sdk", "cart")
	sub := mustDial(t, s, tok, "cart", "c-1")
	sub.waitFor("initial", func(f stateFrame) bool { return f.Type == "state" })
	s.MustDo(t, "DELETE", "/api/v1/tokens/"+id, s.AdminToken, nil, 200, nil)
	_, err := sub.next(5 * time.Second)
	if got := websocket.CloseStatus(err); got != 4401 {
		t.Fatalf("close status %d (%v), want 4401", got, err)
	}
	if _, err := dial(t, s, tok, "cart", "c-1", 0); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("revoked token dialled again: %v", err)
	}
	if st, _ := s.Do(t, "POST", "/api/v1/reports", tok, report("cart", "c-1", 1, 1, 0, 0)); st != 401 {
		t.Fatalf("revoked token report: status %d", st)
	}
}

func TestSubscribersOnlyGetTheirService(t *testing.T) {
	s := servertest.Start(t)
	a := mustDial(t, s, s.AdminToken, "alpha", "a-1")
	b := mustDial(t, s, s.AdminToken, "beta", "b-1")
	a.waitFor("alpha initial", func(f stateFrame) bool { return f.Type == "state" })
	b.waitFor("beta initial", func(f stateFrame) bool { return f.Type == "state" })
	s.MustDo(t, "POST", "/api/v1/overrides", s.AdminToken, map[string]any{"service": "alpha", "level": 3, "reason": "r"}, 201, nil)
	s.MustDo(t, "POST", "/api/v1/overrides", s.AdminToken, map[string]any{"service": "beta", "level": 1, "reason": "r"}, 201, nil)
	fa := a.waitFor("alpha change", func(f stateFrame) bool { return f.Level == 3 })
	fb := b.waitFor("beta change", func(f stateFrame) bool { return f.Level == 1 })
	if fa.Service != "alpha" || fb.Service != "beta" {
		t.Fatalf("cross-service frame: %+v %+v", fa, fb)
	}
}

// A subscriber that never reads must not delay the others, and the one
// that reads must end on the newest version (latest wins).
func TestStalledReaderDoesNotBlockOthers(t *testing.T) {
	s := servertest.Start(t, servertest.WithConfig(func(c *appConfig) { c.Server.WriteTimeout = 500 * time.Millisecond }))
	stalled := mustDial(t, s, s.AdminToken, "hot", "stalled")
	_ = stalled // never read
	good := mustDial(t, s, s.AdminToken, "hot", "good")
	good.waitFor("initial", func(f stateFrame) bool { return f.Type == "state" })
	var last uint64
	for i := 0; i < 40; i++ {
		var o struct{ ID string }
		s.MustDo(t, "POST", "/api/v1/overrides", s.AdminToken, map[string]any{"service": "hot", "level": i % 4, "reason": strings.Repeat("x", 400)}, 201, &o)
	}
	last = getService(t, s, "hot").Version
	start := time.Now()
	f := good.waitFor("latest version", func(f stateFrame) bool { return f.Version == last })
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("reader took %v to reach v%d", el, f.Version)
	}
}

func TestOversizeFrameClosesWith1009(t *testing.T) {
	s := servertest.Start(t)
	sub := mustDial(t, s, s.AdminToken, "big", "b-1")
	sub.waitFor("initial", func(f stateFrame) bool { return f.Type == "state" })
	sub.send(map[string]any{"type": "report", "pad": strings.Repeat("x", 70<<10)})
	var err error
	for err == nil {
		_, err = sub.next(5 * time.Second)
	}
	if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
		t.Fatalf("close status %d (%v), want 1009", got, err)
	}
}

// TestOversizeFrameLingers sends a frame far larger than the socket
// buffers hold, so the controller refuses it while the client is still
// writing it. The client's write must complete and it must read 1009: a
// controller that closed with the rest of the frame unread would reset
// the connection instead.
func TestOversizeFrameLingers(t *testing.T) {
	s := servertest.Start(t)
	for i := range 5 {
		sub := mustDial(t, s, s.AdminToken, "big", fmt.Sprintf("b-%d", i))
		sub.waitFor("initial", func(f stateFrame) bool { return f.Type == "state" })
		sub.send(map[string]any{"type": "report", "pad": strings.Repeat("x", 900<<10)})
		var err error
		for err == nil {
			_, err = sub.next(5 * time.Second)
		}
		if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
			t.Fatalf("round %d: close status %d (%v), want 1009", i, got, err)
		}
	}
	// The close is counted under its own reason, not as a read error.
	eventually(t, "closes counted as too_big", func() bool {
		_, m := s.Do(t, "GET", "/metrics", "", nil)
		return strings.Contains(string(m), `brownout_ws_closes_total{reason="too_big"} 5`)
	})
}

func TestBadFramesGetErrorsAndChangeNothing(t *testing.T) {
	s := servertest.Start(t)
	sub := mustDial(t, s, s.AdminToken, "frames", "f-1")
	sub.waitFor("initial", func(f stateFrame) bool { return f.Type == "state" })
	bad := []any{
		map[string]any{"type": "report", "cpu_percent": 150, "memory_percent": 1},
		map[string]any{"type": "report", "instance": "someone-else", "cpu_percent": 1, "memory_percent": 1},
		map[string]any{"type": "nope"},
		map[string]any{"type": "ack", "version": "x"},
		"not an object",
	}
	for _, b := range bad {
		sub.send(b)
		f, err := sub.next(5 * time.Second)
		if err != nil || f.Type != "error" || f.Message == "" {
			t.Fatalf("frame %v: got %+v %v", b, f, err)
		}
	}
	sub.send(map[string]any{"type": "report", "cpu_percent": 12, "memory_percent": 34, "requests": 10, "errors": 1})
	eventually(t, "valid socket report counted", func() bool {
		svc := getService(t, s, "frames")
		return svc.Signals.CPU == 12 && svc.Signals.ErrorRate == 0.1
	})
}

// TestEveryRouteChecksScope walks the real router: no token → 401
// everywhere under /api/v1; a viewer may only read; an sdk token for
// another service may do nothing with "checkout".
func TestEveryRouteChecksScope(t *testing.T) {
	s := servertest.Start(t, servertest.WithConfig(func(c *appConfig) { c.Server.AuthFailBurst = 1000 }))
	_, viewer := s.Token(t, "viewer", "")
	_, otherSDK := s.Token(t, "sdk", "other")
	_, ownSDK := s.Token(t, "sdk", "checkout")
	s.MustDo(t, "POST", "/api/v1/reports", ownSDK, report("checkout", "c-1", 1, 1, 0, 0), 202, nil)

	bodies := map[string]any{
		"POST /api/v1/reports":                      report("checkout", "c-1", 1, 1, 0, 0),
		"POST /api/v1/overrides":                    map[string]any{"service": "checkout", "level": 1, "reason": "r"},
		"POST /api/v1/emergency":                    map[string]any{"reason": "r"},
		"POST /api/v1/tokens":                       map[string]any{"scope": "viewer", "name": "x"},
		"POST /api/v1/webhooks":                     map[string]any{"name": "x", "url": "https://hooks.example.com/x"},
		"PUT /api/v1/thresholds":                    map[string]any{},
		"PUT /api/v1/flags":                         map[string]any{},
		"PUT /api/v1/services/{service}/thresholds": map[string]any{},
		"PUT /api/v1/services/{service}/flags":      map[string]any{},
	}
	n := 0
	err := chi.Walk(s.App.Server.Router(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if !strings.HasPrefix(route, "/api/v1/") {
			return nil
		}
		n++
		path := strings.NewReplacer("{service}", "checkout", "{id}", "ovr_0000", "/*", "").Replace(route)
		if route == "/api/v1/subscribe" {
			path += "?service=checkout&instance=c-9"
		}
		if route == "/api/v1/history/samples" {
			path += "?service=checkout"
		}
		body := bodies[method+" "+route]
		write := method != http.MethodGet
		t.Run(method+" "+route, func(t *testing.T) {
			if st, b := s.Do(t, method, path, "", body); st != 401 {
				t.Errorf("no token: status %d, want 401 (%s)", st, b)
			}
			if st, b := s.Do(t, method, path, "bo_not-a-token", body); st != 401 {
				t.Errorf("bad token: status %d, want 401 (%s)", st, b)
			}
			st, b := s.Do(t, method, path, viewer, body)
			switch {
			case write || route == "/api/v1/subscribe" || strings.HasPrefix(route, "/api/v1/tokens") || route == "/api/v1/backup" || // a backup holds token hashes
				strings.HasPrefix(route, "/api/v1/webhooks") || strings.HasPrefix(route, "/api/v1/deadletters"): // destinations are admin business
				if st != 403 {
					t.Errorf("viewer: status %d, want 403 (%s)", st, b)
				}
			default:
				if st == 401 || st == 403 {
					t.Errorf("viewer read: status %d (%s)", st, b)
				}
			}
			if st, b := s.Do(t, method, path, otherSDK, body); st != 403 {
				t.Errorf("sdk token of another service: status %d, want 403 (%s)", st, b)
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Fatalf("walked only %d routes", n)
	}
	// The sdk token of the service itself may report, subscribe and read it.
	if st, b := s.Do(t, "GET", "/api/v1/services/checkout", ownSDK, nil); st != 200 {
		t.Fatalf("own sdk read: %d %s", st, b)
	}
	if _, err := dial(t, s, ownSDK, "checkout", "c-2", 0); err != nil {
		t.Fatalf("own sdk subscribe: %v", err)
	}
}

func TestBadTokensAreThrottledButGoodOnesPass(t *testing.T) {
	s := servertest.Start(t, servertest.WithConfig(func(c *appConfig) { c.Server.AuthFailBurst = 5 }))
	codes := map[int]int{}
	for i := 0; i < 50; i++ {
		st, _ := s.Do(t, "GET", "/api/v1/services", fmt.Sprintf("bo_guess-%d", i), nil)
		codes[st]++
	}
	if codes[401] != 5 || codes[429] != 45 {
		t.Fatalf("statuses for 50 bad tokens: %v, want 5×401 then 429", codes)
	}
	if st, b := s.Do(t, "GET", "/api/v1/services", s.AdminToken, nil); st != 200 {
		t.Fatalf("valid token while throttled: %d %s", st, b)
	}
}
