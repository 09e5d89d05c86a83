package e2e

import (
	"context"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// dialFrom opens a TCP connection to addr from the loopback address src
// (127.0.0.0/8 is all loopback on Linux, so each src is its own client).
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	return d.Dial("tcp", addr)
}

func httpFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

// TestIdleConnectionFloodLeavesOthersServing is the descriptor-exhaustion
// attack at a smaller scale: two addresses each open many more idle
// connections than their cap (they used to exhaust the process's open
// files until /healthz stopped answering). With per-address caps the
// flood holds only its quota: /healthz, the dashboard and a
// well-behaved subscriber from another address keep working, and a
// flood of websocket subscribers from one address is refused past its
// cap with 429.
//
// BROWNOUT_IDLE_FLOOD=N runs the full-size attack instead: N connections
// from each address against the default caps (1,024 per address).
func TestIdleConnectionFloodLeavesOthersServing(t *testing.T) {
	perAddr, flood := 40, 400
	args := []string{"--max-conns-per-addr", "40", "--max-subscribers-per-addr", "5"}
	if v := os.Getenv("BROWNOUT_IDLE_FLOOD"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("BROWNOUT_IDLE_FLOOD=%q: want a count", v)
		}
		perAddr, flood = 1024, n
		args = []string{"--max-subscribers-per-addr", "5"}
	}
	ctl := startController(t, args...)
	start := time.Now()

	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
		for range flood {
			c, err := dialFrom(src, ctl.addr)
			if err != nil {
				continue // refused and reset before the dial returned
			}
			held = append(held, c)
		}
	}
	// Connections over the cap are closed by the server: a read sees EOF
	// or a reset at once; the first perAddr stay open (idle).
	open := 0
	for _, c := range held {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open++
			}
		}
	}
	// (A full-size flood takes longer than the server's 10 s header
	// timeout, which closes the oldest idle ones: only the cap is checked.)
	if open > 2*perAddr || (os.Getenv("BROWNOUT_IDLE_FLOOD") == "" && open < perAddr) {
		t.Fatalf("%d of %d flood connections stayed open, want %d (per address cap %d × 2)", open, len(held), 2*perAddr, perAddr)
	}

	t.Logf("flood: %d connections from 2 addresses in %s, %d held open by the server", len(held), time.Since(start).Round(time.Millisecond), open)
	good := httpFrom("127.0.0.1")
	for _, path := range []string{"/healthz", "/login"} {
		t0 := time.Now()
		resp, err := good.Get(ctl.url() + path)
		t.Logf("GET %s during the flood: %s", path, time.Since(t0).Round(time.Microsecond))
		if err != nil {
			t.Fatalf("GET %s during the flood: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s during the flood: %d", path, resp.StatusCode)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wsURL := strings.Replace(ctl.url(), "http://", "ws://", 1) + "/api/v1/subscribe?service=checkout&instance="
	opts := func(src string) *websocket.DialOptions {
		return &websocket.DialOptions{
			HTTPClient:   httpFrom(src),
			HTTPHeader:   http.Header{"Authorization": {"Bearer " + adminToken}},
			Subprotocols: []string{"brownout.v1"},
		}
	}
	c, _, err := websocket.Dial(ctx, wsURL+"good", opts("127.0.0.1"))
	if err != nil {
		t.Fatalf("well-behaved subscriber during the flood: %v", err)
	}
	defer c.CloseNow()
	if _, _, err := c.Read(ctx); err != nil {
		t.Fatalf("well-behaved subscriber got no state: %v", err)
	}

	// Subscribers from one address past their cap: 429.
	var subs []*websocket.Conn
	defer func() {
		for _, s := range subs {
			s.CloseNow()
		}
	}()
	for i := range 5 {
		s, _, err := websocket.Dial(ctx, wsURL+"w-"+itoa(i), opts("127.0.0.4"))
		if err != nil {
			t.Fatalf("subscriber %d of 5 from one address: %v", i+1, err)
		}
		subs = append(subs, s)
	}
	_, resp, err := websocket.Dial(ctx, wsURL+"w-over", opts("127.0.0.4"))
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		st := 0
		if resp != nil {
			st = resp.StatusCode
		}
		t.Fatalf("6th subscriber from one address: err %v status %d, want 429", err, st)
	}
	// …while another address still subscribes.
	s, _, err := websocket.Dial(ctx, wsURL+"other", opts("127.0.0.5"))
	if err != nil {
		t.Fatalf("subscriber from another address: %v", err)
	}
	s.CloseNow()
}
