package openfeature

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/brownout-io/brownout/sdk/wire"
	"github.com/coder/websocket"
)

// fakeController speaks enough of the push protocol for the provider's
// tests: it sends one state on connect, can refuse connections (down) and
// can end them as a revoked token would.
type fakeController struct {
	srv *httptest.Server

	mu      sync.Mutex
	flags   map[string]bool
	level   wire.Level
	version uint64
	down    bool
	revoked bool
	conns   map[*websocket.Conn]struct{}
}

func newFakeController(tb testing.TB, flags map[string]bool) *fakeController {
	tb.Helper()
	f := &fakeController{flags: flags, version: 1, conns: map[*websocket.Conn]struct{}{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	tb.Cleanup(f.srv.Close)
	return f
}

func (f *fakeController) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	down, revoked := f.down, f.revoked
	f.mu.Unlock()
	switch {
	case revoked:
		http.Error(w, `{"error":{"code":"unauthorized","message":"token revoked"}}`, http.StatusUnauthorized)
		return
	case down:
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{wire.Subprotocol}})
	if err != nil {
		return
	}
	defer conn.CloseNow()
	f.mu.Lock()
	f.conns[conn] = struct{}{}
	st := wire.State{Type: wire.TypeState, Service: "checkout", Epoch: "e1", Version: f.version, Level: f.level,
		LevelName: f.level.String(), ComputedLevel: f.level, Flags: f.flags, Cause: "signal", ChangedAt: time.Now().UTC()}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.conns, conn)
		f.mu.Unlock()
	}()
	b, _ := json.Marshal(st)
	ctx := r.Context()
	if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
		return
	}
	for {
		if _, _, err := conn.Read(ctx); err != nil {
			return
		}
	}
}

// setDown refuses new connections and drops the live ones.
func (f *fakeController) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	conns := f.conns
	f.conns = map[*websocket.Conn]struct{}{}
	f.mu.Unlock()
	if down {
		for c := range conns {
			c.Close(websocket.StatusGoingAway, "down")
		}
	}
}

// revoke ends every connection with the revoked-token close code.
func (f *fakeController) revoke() {
	f.mu.Lock()
	f.revoked = true
	conns := f.conns
	f.conns = map[*websocket.Conn]struct{}{}
	f.mu.Unlock()
	for c := range conns {
		c.Close(websocket.StatusCode(wire.CloseRevoked), "token revoked")
	}
}

func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var _ = context.Background
