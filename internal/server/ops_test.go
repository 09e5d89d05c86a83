package server_test

import (
	"encoding/json"
	"fmt"
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
	// A report that crosses no threshold, so that the override is the only
	// change pushed (one ack counted).
	s.MustDo(t, "POST", "/api/v1/reports", s.AdminToken, report("m", "m-1", 50, 50, 10, 0), 202, nil)
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
			`brownout_build_info{goversion="go1.`,
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

func TestInMemoryListsPaginate(t *testing.T) {
	s := servertest.Start(t)
	for i := 0; i < 5; i++ {
		s.MustDo(t, "POST", "/api/v1/reports", s.AdminToken, report(fmt.Sprintf("svc-%d", i), "i", 1, 1, 0, 0), 202, nil)
	}
	seen := map[string]bool{}
	cursor := ""
	pages := 0
	for {
		var page struct {
			Items      []struct{ Name string } `json:"items"`
			NextCursor string                  `json:"next_cursor"`
		}
		path := "/api/v1/services?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		s.MustDo(t, "GET", path, s.AdminToken, nil, 200, &page)
		pages++
		for _, it := range page.Items {
			if seen[it.Name] {
				t.Fatalf("%s twice", it.Name)
			}
			seen[it.Name] = true
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(seen) != 5 || pages != 3 {
		t.Fatalf("saw %d services in %d pages, want 5 in 3", len(seen), pages)
	}
	for _, p := range []string{"/api/v1/services?limit=0", "/api/v1/services?cursor=zz%21", "/api/v1/tokens?bogus=1", "/api/v1/overrides?limit=5000"} {
		if st, b := s.Do(t, "GET", p, s.AdminToken, nil); st != 400 {
			t.Errorf("%s: %d %s", p, st, b)
		}
	}
}

// A peer that stops reading stops answering pings: the server drops it
// after one ping interval plus the write timeout, and the controller no
// longer counts it as connected.
func TestPingsDropDeadPeers(t *testing.T) {
	s := servertest.Start(t, servertest.WithConfig(func(c *appConfig) {
		c.Server.PingInterval = 100 * time.Millisecond
		c.Server.WriteTimeout = 300 * time.Millisecond
	}))
	alive := mustDial(t, s, s.AdminToken, "pings", "alive")
	mustDial(t, s, s.AdminToken, "pings", "dead") // never reads again
	alive.waitFor("first state", func(f stateFrame) bool { return f.Type == "state" })
	done := make(chan struct{})
	go func() { // the live one keeps reading, so it answers pings
		defer close(done)
		for {
			if _, err := alive.next(3 * time.Second); err != nil {
				return
			}
		}
	}()
	eventually(t, "dead peer dropped", func() bool {
		var svc service
		if st, _ := s.Do(t, "GET", "/api/v1/services/pings", s.AdminToken, nil); st != 200 {
			return false
		}
		svc = getService(t, s, "pings")
		conn := map[string]bool{}
		for _, in := range svc.Instances {
			conn[in.Name] = in.Connected
		}
		return !conn["dead"] && conn["alive"]
	})
	time.Sleep(500 * time.Millisecond) // several more ping rounds
	if svc := getService(t, s, "pings"); !svc.Instances[0].Connected {
		t.Fatalf("the reading peer was dropped: %+v", svc.Instances)
	}
	alive.c.CloseNow()
	<-done
}

// A controller over SQLite is a replica set of one that always leads.
func TestSingleReplicaSet(t *testing.T) {
	s := servertest.Start(t)
	sub := mustDial(t, s, s.AdminToken, "rs", "rs-1")
	sub.waitFor("initial", func(f stateFrame) bool { return f.Type == "state" })
	var got struct {
		Items []struct {
			ID          string `json:"id"`
			Leader      bool   `json:"leader"`
			Subscribers int    `json:"subscribers"`
		} `json:"items"`
	}
	s.MustDo(t, "GET", "/api/v1/replicas", s.AdminToken, nil, 200, &got)
	if len(got.Items) != 1 || !got.Items[0].Leader || got.Items[0].Subscribers != 1 {
		t.Fatalf("replica set %+v, want one leader with 1 subscriber", got.Items)
	}
	if st, b := s.Do(t, "GET", "/api/v1/replicas?x=1", s.AdminToken, nil); st != 400 {
		t.Fatalf("unknown parameter: %d %s, want 400", st, b)
	}
	_, b := s.Do(t, "GET", "/metrics", "", nil)
	for _, want := range []string{"brownout_replica_leader 1", "brownout_replica_failovers_total 0", "brownout_replica_feed_connected 1"} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("metrics lack %q", want)
		}
	}
}
