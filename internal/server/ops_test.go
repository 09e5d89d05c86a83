package server_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/servertest"
)

func TestProbesAndMetrics(t *testing.T) {
	s := servertest.Start(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		if st, b := s.Do(t, "GET", p, "", nil); st != 200 {
			t.Fatalf("%s: %d %s", p, st, b)
		}
	}
	sub := mustDial(t, s, s.AdminToken, "m", "m-1")
	f := sub.waitFor("initial", func(f stateFrame) bool { return f.Type == "state" })
	s.MustDo(t, "POST", "/api/v1/reports", s.AdminToken, report("m", "m-1", 50, 50, 10, 1), 202, nil)
	s.MustDo(t, "POST", "/api/v1/overrides", s.AdminToken, map[string]any{"service": "m", "level": 2, "reason": "r"}, 201, nil)
	sub.waitFor("override", func(g stateFrame) bool { return g.Version > f.Version })
	eventually(t, "metrics", func() bool {
		_, b := s.Do(t, "GET", "/metrics", "", nil)
		body := string(b)
		for _, want := range []string{
			`brownout_reports_ingested_total{transport="http"} 1`,
			"brownout_subscribers 1",
			`brownout_service_level{service="m"} 2`,
			"brownout_pushes_total",
			"brownout_ack_latency_seconds_count 1",
			`brownout_store_write_seconds_count{op=`,
			"go_goroutines",
		} {
			if !strings.Contains(body, want) {
				return false
			}
		}
		return true
	})
}

func TestSampleHistoryIsAggregatedOnTheServer(t *testing.T) {
	s := servertest.Start(t)
	for i := 0; i < 8; i++ {
		s.MustDo(t, "POST", "/api/v1/reports", s.AdminToken, []any{
			report("hist", "h-1", 40, 20, 100, 10),
			report("hist", "h-2", 60, 40, 300, 0),
		}, 202, nil)
		time.Sleep(60 * time.Millisecond)
	}
	var resp struct {
		Step  string `json:"step"`
		Items []struct {
			CPU       float64 `json:"cpu_percent"`
			Memory    float64 `json:"memory_percent"`
			ErrorRate float64 `json:"error_rate"`
			Instances int     `json:"instances"`
		} `json:"items"`
	}
	eventually(t, "samples", func() bool {
		s.MustDo(t, "GET", "/api/v1/history/samples?service=hist&step=1h", s.AdminToken, nil, 200, &resp)
		return len(resp.Items) > 0 && resp.Items[len(resp.Items)-1].Instances == 2
	})
	p := resp.Items[len(resp.Items)-1]
	if p.CPU < 49.9 || p.CPU > 50.1 || p.Memory < 29.9 || p.Memory > 30.1 {
		t.Fatalf("means: %+v", p)
	}
	if p.ErrorRate < 0.0249 || p.ErrorRate > 0.0251 { // 10/400, weighted by requests
		t.Fatalf("error rate %v, want 0.025", p.ErrorRate)
	}
	if resp.Step != "1h0m0s" {
		t.Fatalf("step %q", resp.Step)
	}
	b, _ := json.Marshal(resp)
	t.Logf("%s", b)
}
