package e2e

import (
	"context"
	"errors"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestDrainOnSIGTERM is what a load balancer sees when the controller is
// told to stop: /readyz turns 503 at once while the API keeps answering
// for the drain period, then websockets close with going-away and the
// process exits 0.
func TestDrainOnSIGTERM(t *testing.T) {
	const drain = 1500 * time.Millisecond
	ctl := startController(t, "--drain", drain.String())
	api := newClient(ctl.url(), adminToken)
	api.must(t, "POST", "/api/v1/reports", map[string]any{"service": "drain", "instance": "d-1", "cpu_percent": 10, "memory_percent": 10, "requests": 1, "errors": 0}, 202, nil)

	// HEAD probes answer like GET, never a redirect to the dashboard login.
	for _, p := range []string{"/healthz", "/readyz"} {
		st, _, err := api.do(context.Background(), "HEAD", p, nil)
		if err != nil || st != 200 {
			t.Fatalf("HEAD %s: %d %v", p, st, err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws := dialSubscriber(t, ctx, ctl.url(), adminToken, "drain", "d-1")
	if _, _, err := ws.Read(ctx); err != nil {
		t.Fatalf("first frame: %v", err)
	}
	closed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				closed <- err
				return
			}
		}
	}()

	sent := time.Now()
	if err := ctl.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// During the drain: /readyz 503 (GET and HEAD), the API still serves.
	saw503 := false
	for time.Since(sent) < drain-300*time.Millisecond {
		st, _, err := api.do(ctx, "GET", "/readyz", nil)
		if err != nil {
			t.Fatalf("readyz during drain at %v: %v", time.Since(sent), err)
		}
		if st == http.StatusServiceUnavailable {
			saw503 = true
		} else if time.Since(sent) > 200*time.Millisecond {
			t.Fatalf("readyz %d at %v into the drain, want 503", st, time.Since(sent))
		}
		if st, _, err := api.do(ctx, "HEAD", "/readyz", nil); saw503 && (err != nil || st != 503) {
			t.Fatalf("HEAD /readyz during drain: %d %v", st, err)
		}
		if st, _, err := api.do(ctx, "GET", "/api/v1/services/drain", nil); err != nil || st != 200 {
			t.Fatalf("API during drain at %v: %d %v", time.Since(sent), st, err)
		}
		if st, _, err := api.do(ctx, "GET", "/healthz", nil); err != nil || st != 200 {
			t.Fatalf("healthz during drain: %d %v", st, err)
		}
		select {
		case err := <-closed:
			t.Fatalf("websocket closed during the drain: %v", err)
		default:
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !saw503 {
		t.Fatal("readyz never answered 503 during the drain")
	}
	select {
	case err := <-closed:
		if st := websocket.CloseStatus(err); st != websocket.StatusGoingAway {
			t.Fatalf("websocket closed with %v (%v), want going-away", st, err)
		}
		if since := time.Since(sent); since < drain {
			t.Fatalf("websocket closed %v after SIGTERM, before the %v drain ended", since, drain)
		}
	case <-ctx.Done():
		t.Fatal("websocket not closed after the drain")
	}
	select {
	case <-ctl.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("controller did not exit after the drain")
	}
	if code := ctl.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d:\n%s", code, ctl.logText())
	}
	ctl.cmd = nil
	if _, _, err := api.do(context.Background(), "GET", "/healthz", nil); err == nil {
		t.Fatal("still answering after exit")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Logf("after exit: %v", err)
	}
}
