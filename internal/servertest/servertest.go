// Package servertest runs a real controller in-process for tests: the real
// router over a real loopback listener, a real SQLite file in a temporary
// directory, the real control loop. It can stop the controller gracefully,
// kill it (every connection cut at once, nothing flushed beyond what the
// store already has), and start it again on the same address and data.
package servertest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/app"
	"github.com/brownout-io/brownout/internal/notify"
)

// AdminToken is the admin token every test server uses.
const AdminToken = "bo_test-admin-token-0123456789abcdef"

// Server is a running controller.
type Server struct {
	// URL is the base URL, e.g. http://127.0.0.1:41234.
	URL        string
	AdminToken string
	DataDir    string
	App        *app.App

	addr    string
	cfg     app.Config
	ln      *trackingListener
	http    *http.Server
	running bool
	mu      sync.Mutex
}

// Option adjusts the controller's configuration.
type Option func(*app.Config)

// WithEvalInterval sets how often levels are evaluated.
func WithEvalInterval(d time.Duration) Option {
	return func(c *app.Config) { c.Controller.EvalInterval = d }
}

// WithConfig lets a test change anything else.
func WithConfig(fn func(*app.Config)) Option { return Option(fn) }

// Start runs a controller on a fresh data directory; it is stopped when
// the test ends.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	cfg := app.Config{DataDir: tb.TempDir(), AdminToken: AdminToken}
	cfg.Controller.EvalInterval = 50 * time.Millisecond
	cfg.SampleFlush = 100 * time.Millisecond
	// Webhooks may reach test receivers on loopback, and retry quickly.
	cfg.Notify.Allow, cfg.Notify.AllowPrivate = notify.AllowList{"127.0.0.1", "localhost"}, true
	cfg.Notify.BaseDelay, cfg.Notify.MaxDelay, cfg.Notify.Poll = 20*time.Millisecond, 100*time.Millisecond, 50*time.Millisecond
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{AdminToken: AdminToken, DataDir: cfg.DataDir, cfg: cfg, addr: "127.0.0.1:0"}
	s.start(tb)
	tb.Cleanup(func() { s.Stop(tb) })
	return s
}

func (s *Server) start(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := app.New(context.Background(), s.cfg)
	if err != nil {
		tb.Fatalf("start controller: %v", err)
	}
	var ln net.Listener
	for i := 0; ; i++ {
		ln, err = net.Listen("tcp", s.addr)
		if err == nil || i > 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		_ = a.Close(context.Background())
		tb.Fatalf("listen on %s: %v", s.addr, err)
	}
	s.addr = ln.Addr().String()
	s.URL = "http://" + s.addr
	s.ln = &trackingListener{Listener: ln, conns: map[net.Conn]struct{}{}}
	s.http = &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second}
	s.App = a
	a.Run(context.Background())
	go func() { _ = s.http.Serve(s.ln) }()
	s.running = true
}

// Stop shuts the controller down gracefully (subscribers get going-away).
// Stopping a stopped server does nothing.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return
	}
	s.running = false
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.http.Shutdown(ctx)
	s.App.Shutdown(ctx)
	s.ln.closeAll()
	if err := s.App.Close(ctx); err != nil {
		tb.Errorf("close controller: %v", err)
	}
}

// Kill cuts every connection at once, as a crash would, then releases the
// store so that the same process can start a new controller on it.
func (s *Server) Kill(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return
	}
	s.running = false
	_ = s.ln.Close()
	s.ln.closeAll()
	_ = s.http.Close()
	_ = s.App.Close(context.Background())
}

// Restart starts the controller again on the same address and data.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.start(tb)
}

// RestartWith starts the stopped controller again on the same address and
// data with opts applied to its configuration, as an operator restarting
// it with other flags would (a rotated admin token, say).
func (s *Server) RestartWith(tb testing.TB, opts ...Option) {
	tb.Helper()
	for _, o := range opts {
		o(&s.cfg)
	}
	s.AdminToken = s.cfg.AdminToken
	s.start(tb)
}

// Do sends a JSON request (body may be nil, a []byte or any value to
// encode) with the token and returns the status and body.
func (s *Server) Do(tb testing.TB, method, path, token string, body any) (int, []byte) {
	tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		data, err := json.Marshal(b)
		if err != nil {
			tb.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		tb.Fatalf("request: %v", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// MustDo is Do that fails the test unless the status is want, and decodes
// the response into v when v is non-nil.
func (s *Server) MustDo(tb testing.TB, method, path, token string, body any, want int, v any) {
	tb.Helper()
	st, out := s.Do(tb, method, path, token, body)
	if st != want {
		tb.Fatalf("%s %s: status %d, want %d; body %s", method, path, st, want, out)
	}
	if v != nil {
		if err := json.Unmarshal(out, v); err != nil {
			tb.Fatalf("%s %s: decode %s: %v", method, path, out, err)
		}
	}
}

// Token creates a token through the API and returns its id and secret.
func (s *Server) Token(tb testing.TB, scope, service string) (id, secret string) {
	tb.Helper()
	var resp struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	body := map[string]string{"scope": scope, "name": "test-" + scope}
	if service != "" {
		body["service"] = service
	}
	s.MustDo(tb, http.MethodPost, "/api/v1/tokens", s.AdminToken, body, http.StatusCreated, &resp)
	return resp.ID, resp.Token
}

type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	return &trackedConn{Conn: c, l: l}, nil
}

func (l *trackingListener) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		_ = c.Close()
	}
	l.conns = map[net.Conn]struct{}{}
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c.Conn)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
