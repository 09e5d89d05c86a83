package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Bounds for the well-behaved clients while hostile ones run. Normal
// latency on an idle machine is a few milliseconds; the bounds leave room
// for -race and a loaded CI machine, and would still catch a broadcaster
// that waits for a stuck peer (the write timeout is 10 s).
const (
	maxPushLatency = 2 * time.Second
	maxHTTPLatency = 2 * time.Second
)

// TestHostileClients runs slowloris connections, subscribers that never
// read, oversize frames and thousands of bad tokens against the real
// binary, while a well-behaved subscriber must keep receiving every change
// promptly and a well-behaved HTTP client must keep getting answers.
//
// Without -short it also waits for the controller to cut the slowloris
// connections (its 10 s header timeout).
func TestHostileClients(t *testing.T) {
	ctl := startController(t)
	api := newClient(ctl.url(), adminToken)
	const svc = "hostile"
	api.must(t, http.MethodPost, "/api/v1/reports", map[string]any{
		"service": svc, "instance": "seed", "cpu_percent": 10, "memory_percent": 10, "requests": 1, "errors": 0,
	}, http.StatusAccepted, nil)
	// Big state frames (256 flags per level), so that peers that never read
	// fill their socket buffers within a few changes.
	flags := map[string]bool{}
	for i := 0; i < 256; i++ {
		flags[fmt.Sprintf("padding_flag_%03d_%s", i, strings.Repeat("x", 47))] = i%2 == 0
	}
	set := map[string]any{"levels": []map[string]any{{"level": 0, "flags": flags}, {"level": 1, "flags": flags}, {"level": 2, "flags": flags}, {"level": 3, "flags": flags}}}
	api.must(t, http.MethodPut, "/api/v1/services/"+svc+"/flags", set, http.StatusOK, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The well-behaved subscriber.
	good := dialSubscriber(t, ctx, ctl.url(), adminToken, svc, "good")
	defer good.CloseNow()
	versions := make(chan uint64, 1024)
	go readVersions(ctx, good, versions)
	first := <-versions

	// Hostile clients.
	hostileCtx, stopHostile := context.WithCancel(ctx)
	defer stopHostile()
	var wg sync.WaitGroup
	slow := startSlowloris(t, hostileCtx, ctl.addr, 200, &wg)
	stuck := startNonReaders(t, hostileCtx, ctl.addr, svc, 50)
	defer func() {
		for _, c := range stuck {
			c.Close()
		}
	}()
	var bad401, bad429, badOther atomic.Int64
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			badTokens(hostileCtx, ctl.url(), 400, &bad401, &bad429, &badOther)
		}()
	}
	tooBig := make(chan error, 1)
	go func() { tooBig <- oversizeFrame(ctx, ctl.url(), svc) }()

	// Meanwhile: changes must reach the good subscriber promptly, and the
	// API must answer.
	last := first
	var worstPush, worstHTTP time.Duration
	id := ""
	for k := 0; k < 20; k++ {
		start := time.Now()
		if id == "" {
			var o struct {
				ID string `json:"id"`
			}
			api.must(t, http.MethodPost, "/api/v1/overrides", map[string]any{"service": svc, "level": 1 + k%3, "reason": "hostile test"}, http.StatusCreated, &o)
			id = o.ID
		} else {
			api.must(t, http.MethodDelete, "/api/v1/overrides/"+id, nil, http.StatusOK, nil)
			id = ""
		}
		worstHTTP = max(worstHTTP, time.Since(start))
		for last <= first+uint64(k) {
			select {
			case v := <-versions:
				last = max(last, v)
			case <-time.After(maxPushLatency):
				t.Fatalf("change %d did not reach the well-behaved subscriber within %s (last version %d)", k, maxPushLatency, last)
			}
		}
		worstPush = max(worstPush, time.Since(start))

		start = time.Now()
		api.must(t, http.MethodGet, "/api/v1/services/"+svc, nil, http.StatusOK, nil)
		worstHTTP = max(worstHTTP, time.Since(start))
		time.Sleep(50 * time.Millisecond)
	}
	if worstHTTP > maxHTTPLatency {
		t.Errorf("slowest API answer under attack took %s, want ≤ %s", worstHTTP, maxHTTPLatency)
	}

	select {
	case err := <-tooBig:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Error("oversize frame: no close within 10 s")
	}
	stopHostile()
	wg.Wait()
	n401, n429 := bad401.Load(), bad429.Load()
	if n401 == 0 || n429 == 0 || badOther.Load() > 0 {
		t.Errorf("bad tokens: %d × 401, %d × 429, %d other; want 401 first, then 429 throttling", n401, n429, badOther.Load())
	}
	if n401 > 200 {
		t.Errorf("bad tokens: %d × 401 before throttling, want few", n401)
	}
	// The good subscriber is still connected and the API still answers.
	api.must(t, http.MethodGet, "/api/v1/services/"+svc, nil, http.StatusOK, nil)
	t.Logf("worst push %s, worst API call %s; bad tokens %d × 401, %d × 429; %d slowloris, %d non-readers",
		worstPush, worstHTTP, n401, n429, len(slow), len(stuck))

	if !testing.Short() {
		// The controller cuts connections whose headers never complete.
		deadline := time.Now().Add(15 * time.Second)
		for _, c := range slow {
			_ = c.SetReadDeadline(deadline)
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("a slowloris connection was still open after 15 s")
			}
		}
	}
	for _, c := range slow {
		c.Close()
	}
	if strings.Contains(ctl.logText(), "panic") {
		t.Errorf("controller log mentions a panic:\n%s", ctl.logText())
	}
}

func dialSubscriber(t *testing.T, ctx context.Context, base, token, svc, inst string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/api/v1/subscribe?service="+svc+"&instance="+inst,
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}, Subprotocols: []string{"brownout.v1"}})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	c.SetReadLimit(1 << 20)
	return c
}

// readVersions acks and forwards every state version the connection gets.
func readVersions(ctx context.Context, c *websocket.Conn, out chan<- uint64) {
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			return
		}
		var f struct {
			Type    string `json:"type"`
			Version uint64 `json:"version"`
		}
		if json.Unmarshal(data, &f) != nil || f.Type != "state" {
			continue
		}
		_ = c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"type":"ack","version":%d}`, f.Version)))
		select {
		case out <- f.Version:
		default:
		}
	}
}

// startSlowloris opens n connections that send a request header one byte
// at a time, never finishing it.
func startSlowloris(t *testing.T, ctx context.Context, addr string, n int, wg *sync.WaitGroup) []net.Conn {
	t.Helper()
	var conns []net.Conn
	header := "GET /api/v1/services/hostile HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer " + adminToken + "\r\nX-Padding: "
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("slowloris dial: %v", err)
		}
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				b := byte('a')
				if i < len(header) {
					b = header[i]
				}
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	return conns
}

// startNonReaders opens n subscriber connections with tiny receive buffers
// that complete the handshake and then never read a byte.
func startNonReaders(t *testing.T, ctx context.Context, addr, svc string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for i := 0; i < n; i++ {
		d := net.Dialer{Control: nil}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			t.Fatalf("non-reader dial: %v", err)
		}
		_ = c.(*net.TCPConn).SetReadBuffer(4096)
		var key [16]byte
		_, _ = rand.Read(key[:])
		req := "GET /api/v1/subscribe?service=" + svc + "&instance=stuck-" + itoa(i) + " HTTP/1.1\r\n" +
			"Host: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key[:]) + "\r\nSec-WebSocket-Version: 13\r\n" +
			"Sec-WebSocket-Protocol: brownout.v1\r\nAuthorization: Bearer " + adminToken + "\r\n\r\n"
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatalf("non-reader handshake: %v", err)
		}
		// Read only the status line, to be sure the upgrade happened.
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReaderSize(c, 16).ReadString('\n')
		if err != nil || !strings.Contains(line, "101") {
			t.Fatalf("non-reader upgrade: %q %v", line, err)
		}
		_ = c.SetReadDeadline(time.Time{})
		conns = append(conns, c)
	}
	return conns
}

// badTokens sends up to n requests with made-up tokens, counting answers.
func badTokens(ctx context.Context, base string, n int, n401, n429, other *atomic.Int64) {
	hc := &http.Client{Timeout: 5 * time.Second}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		path := "/api/v1/services/hostile"
		if i%10 == 0 {
			path = "/api/v1/subscribe?service=hostile&instance=x"
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", fmt.Sprintf("Bearer bo_wrong-%d-%d", i, time.Now().UnixNano()))
		resp, err := hc.Do(req)
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			n401.Add(1)
		case http.StatusTooManyRequests:
			if resp.Header.Get("Retry-After") == "" {
				other.Add(1)
			}
			n429.Add(1)
		default:
			other.Add(1)
		}
	}
}

// oversizeFrame sends a frame above the 64 KiB limit and expects the
// server to close with 1009.
func oversizeFrame(ctx context.Context, base, svc string) error {
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/api/v1/subscribe?service="+svc+"&instance=big",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + adminToken}}, Subprotocols: []string{"brownout.v1"}})
	if err != nil {
		return fmt.Errorf("oversize: subscribe: %w", err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	big := `{"type":"report","padding":"` + strings.Repeat("x", 70<<10) + `"}`
	_ = c.Write(ctx, websocket.MessageText, []byte(big)) // the server may close mid-frame
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		_, _, err := c.Read(rctx)
		if err == nil {
			continue // the initial state
		}
		if st := websocket.CloseStatus(err); st != websocket.StatusMessageTooBig {
			return fmt.Errorf("oversize frame: connection ended with %v (status %d), want close 1009", err, st)
		}
		return nil
	}
}
