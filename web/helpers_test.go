package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/brownout-io/brownout/internal/servertest"
)

// report sends one report through the API.
func report(tb testing.TB, s *servertest.Server, service, instance string, cpu, mem, errRate float64, extra map[string]any) {
	tb.Helper()
	body := map[string]any{
		"service": service, "instance": instance, "cpu_percent": cpu, "memory_percent": mem,
		"requests": 1000, "errors": int(errRate * 1000),
	}
	for k, v := range extra {
		body[k] = v
	}
	s.MustDo(tb, http.MethodPost, "/api/v1/reports", s.AdminToken, body, http.StatusAccepted, nil)
}

// subscriber is a real push-protocol client: it applies and acks every
// state and remembers the levels it saw.
type subscriber struct {
	conn   *websocket.Conn
	mu     sync.Mutex
	levels []int
	states chan int
}

func subscribe(tb testing.TB, s *servertest.Server, token, service, instance string) *subscriber {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(s.URL, "http") + "/api/v1/subscribe?service=" + url.QueryEscape(service) + "&instance=" + url.QueryEscape(instance)
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + token}},
		Subprotocols: []string{"brownout.v1"},
	})
	if err != nil {
		tb.Fatalf("subscribe %s/%s: %v", service, instance, err)
	}
	sub := &subscriber{conn: c, states: make(chan int, 64)}
	go sub.loop()
	tb.Cleanup(func() { _ = c.Close(websocket.StatusNormalClosure, "") })
	return sub
}

func (s *subscriber) loop() {
	ctx := context.Background()
	for {
		_, data, err := s.conn.Read(ctx)
		if err != nil {
			close(s.states)
			return
		}
		var m struct {
			Type    string `json:"type"`
			Version uint64 `json:"version"`
			Level   int    `json:"level"`
		}
		if json.Unmarshal(data, &m) != nil || m.Type != "state" {
			continue
		}
		ack, _ := json.Marshal(map[string]any{"type": "ack", "version": m.Version})
		_ = s.conn.Write(ctx, websocket.MessageText, ack)
		s.mu.Lock()
		s.levels = append(s.levels, m.Level)
		s.mu.Unlock()
		select {
		case s.states <- m.Level:
		default:
		}
	}
}

// waitLevel waits until the subscriber receives a state with level.
func (s *subscriber) waitLevel(tb testing.TB, level int, within time.Duration) {
	tb.Helper()
	deadline := time.After(within)
	for {
		select {
		case l, ok := <-s.states:
			if !ok {
				tb.Fatalf("subscriber closed before level %d", level)
			}
			if l == level {
				return
			}
		case <-deadline:
			s.mu.Lock()
			defer s.mu.Unlock()
			tb.Fatalf("subscriber did not receive level %d within %s; saw %v", level, within, s.levels)
		}
	}
}
