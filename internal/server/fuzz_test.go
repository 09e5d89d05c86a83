package server_test

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/health"
	"github.com/brownout-io/brownout/internal/servertest"
)

// frame mirrors the server's client frame shape (ws.go clientFrame): a type,
// an ack version, and the report fields inline.
type frame struct {
	Type    string `json:"type"`
	Version uint64 `json:"version,omitempty"`
	health.Report
}

var frameSeeds = []string{
	`{"type":"ack","version":3}`,
	`{"type":"report","cpu_percent":12.5,"memory_percent":40,"requests":100,"errors":2}`,
	`{"type":"report","service":"other","cpu_percent":1,"memory_percent":1}`,
	`{"type":"report","cpu_percent":101,"memory_percent":-1,"requests":1,"errors":2,"error_rate":0.5}`,
	`{"type":"ack","version":-1}`, `{"type":"nope"}`, `{}`, `[]`, `null`, `{"type":"ack"} {}`,
	`{"type":"report","components":{"db":{"kind":"breaker","state":"open","metrics":{"x":1e999}}}}`,
}

// FuzzFrameDecode decodes arbitrary client frames as the server does.
// Properties: nothing panics; errors are 400s; a report frame that decodes
// and validates carries values within the contract's ranges.
func FuzzFrameDecode(f *testing.F) {
	for _, s := range frameSeeds {
		f.Add([]byte(s))
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, data []byte) {
		var fr frame
		if err := brownout.DecodeJSON(data, &fr); err != nil {
			if brownout.ErrorCode(err) != brownout.EBADREQUEST {
				t.Fatalf("decode error code %q: %v", brownout.ErrorCode(err), err)
			}
			return
		}
		if fr.Type != "report" {
			return
		}
		rep := fr.Report
		if rep.Service == "" {
			rep.Service = "svc"
		}
		if rep.Instance == "" {
			rep.Instance = "inst"
		}
		if err := rep.Validate(now); err != nil {
			return
		}
		for name, v := range map[string]float64{"cpu_percent": *rep.CPUPercent, "memory_percent": *rep.MemoryPercent} {
			if math.IsNaN(v) || v < 0 || v > 100 {
				t.Fatalf("valid report frame with %s %v", name, v)
			}
		}
		if rep.Errors < 0 || rep.Errors > rep.Requests {
			t.Fatalf("valid report frame with requests %d errors %d", rep.Requests, rep.Errors)
		}
	})
}

// FuzzSubscribeFrames sends arbitrary frames over one real subscriber
// connection. Property: a frame within the size limit never ends the
// connection (a refused frame is answered with an error frame; a valid ack
// after each one resets the bad-frame count) and never crashes the server.
func FuzzSubscribeFrames(f *testing.F) {
	for _, s := range frameSeeds {
		f.Add([]byte(s))
	}
	srv := servertest.Start(f)
	ctx := context.Background()
	h := http.Header{"Authorization": {"Bearer " + srv.AdminToken}}
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/api/v1/subscribe?service=fuzz&instance=f-1",
		&websocket.DialOptions{HTTPHeader: h, Subprotocols: []string{"brownout.v1"}})
	if err != nil {
		f.Fatalf("subscribe: %v", err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, _, err := c.Read(ctx); err != nil {
				readErr <- err
				return
			}
		}
	}()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 60<<10 {
			return // beyond the frame limit: the hostile-client test covers 1009
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := c.Write(wctx, websocket.MessageText, data); err != nil {
			t.Fatalf("write: %v", err)
		}
		if err := c.Write(wctx, websocket.MessageText, []byte(`{"type":"ack","version":1}`)); err != nil {
			t.Fatalf("write ack: %v", err)
		}
		// The server reads frames in order, so its pong means both were handled.
		if err := c.Ping(wctx); err != nil {
			select {
			case rerr := <-readErr:
				t.Fatalf("connection ended after frame %q: %v", truncate(data), rerr)
			default:
				t.Fatalf("ping after frame %q: %v", truncate(data), err)
			}
		}
	})
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// FuzzHistoryQuery sends arbitrary query strings to the history and audit
// endpoints. Properties: never a 5xx; every answer is JSON; errors carry a
// code; sample answers hold at most 10,000 points.
func FuzzHistoryQuery(f *testing.F) {
	for _, s := range []string{
		"service=checkout", "service=checkout&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&step=1m",
		"service=checkout&step=1ns", "service=checkout&from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z&step=1s",
		"limit=1000&cursor=AAAA", "limit=0", "cursor=%%%", "service=*&actor=admin", "service=a&service=b",
		"from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "step=-1h&service=x", "servcie=x",
	} {
		f.Add(s)
	}
	srv := servertest.Start(f)
	srv.MustDo(f, http.MethodPost, "/api/v1/reports", srv.AdminToken,
		`{"service":"checkout","instance":"c-1","cpu_percent":10,"memory_percent":20,"requests":10,"errors":1}`, http.StatusAccepted, nil)
	hc := &http.Client{Timeout: 10 * time.Second}
	f.Fuzz(func(t *testing.T, raw string) {
		// Spaces, control bytes and '#' cannot be sent in a request line;
		// net/http itself answers those, before any route.
		if strings.IndexFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '#' }) >= 0 {
			return
		}
		for _, path := range []string{"/api/v1/history/samples", "/api/v1/history/levels", "/api/v1/audit"} {
			req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.RawQuery = raw
			req.Header.Set("Authorization", "Bearer "+srv.AdminToken)
			resp, err := hc.Do(req)
			if err != nil {
				return // the client refused the URL; nothing reached the server
			}
			var body map[string]json.RawMessage
			derr := json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				t.Fatalf("GET %s?%s: status %d", path, raw, resp.StatusCode)
			}
			if derr != nil {
				t.Fatalf("GET %s?%s: status %d, body not JSON: %v", path, raw, resp.StatusCode, derr)
			}
			if resp.StatusCode != http.StatusOK {
				var e struct {
					Code string `json:"code"`
				}
				if json.Unmarshal(body["error"], &e) != nil || e.Code == "" {
					t.Fatalf("GET %s?%s: status %d without an error code", path, raw, resp.StatusCode)
				}
				continue
			}
			var items []json.RawMessage
			if err := json.Unmarshal(body["items"], &items); err != nil {
				t.Fatalf("GET %s?%s: items: %v", path, raw, err)
			}
			if len(items) > 10_000 {
				t.Fatalf("GET %s?%s: %d items", path, raw, len(items))
			}
		}
	})
}
