package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/servertest"
)

func TestFrameVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{`{"type":"state","service":"a","version":42,"level":1}`, 42, true},
		{`{"service":"a","type":"unchanged","version":7}`, 7, true},
		{`{"type":"error","code":"bad_request"}`, 0, false},
		{`{"type":"state","version":}`, 0, false},
	} {
		got, ok := frameVersion([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("frameVersion(%s) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestChangeOnOption(t *testing.T) {
	for _, v := range []string{"follower", "leader"} {
		o, err := parseOptions("prop", []string{"--bin", "controlplane", "--replicas", "3", "--change-on", v}, io.Discard)
		if err != nil {
			t.Errorf("--change-on %s: %v", v, err)
		} else if o.changeOn != v {
			t.Errorf("--change-on %s: got %q", v, o.changeOn)
		}
	}
	if _, err := parseOptions("prop", []string{"--bin", "controlplane", "--replicas", "3", "--change-on", "any"}, io.Discard); err == nil {
		t.Error("--change-on any accepted")
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if got := pct(ds, 50); got != 50*time.Millisecond {
		t.Errorf("p50 = %s", got)
	}
	if got := pct(ds, 99); got != 99*time.Millisecond {
		t.Errorf("p99 = %s", got)
	}
	if got := pct(ds, 100); got != 100*time.Millisecond {
		t.Errorf("max = %s", got)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9", "http://127.3.2.1:80"} {
		if err := checkLoopbackURL(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://10.0.0.1:8080", "http://example.com:80", "https://127.0.0.1:1", "http://0.0.0.0:80"} {
		if err := checkLoopbackURL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestPropAndIngest runs a small propagation and ingest measurement against
// an in-process controller and broadcaster, and checks that the numbers
// are there and consistent.
func TestPropAndIngest(t *testing.T) {
	srv := servertest.Start(t)
	floor := startFloor(t)
	o, err := parseOptions("all", []string{"--url", srv.URL, "--token", srv.AdminToken, "--pid", strconv.Itoa(os.Getpid()),
		"--subs", "40", "--services", "3", "--changes", "6", "--rounds", "2", "--settle", "10ms",
		"--reports", "2000", "--ingest-for", "2s", "--http-for", "1s", "--http-batch", "50"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o.baselineURL, o.progress = floor.URL, false
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res := &Results{Machine: describeMachine()}
	if err := runProp(ctx, o, res, io.Discard); err != nil {
		t.Fatalf("prop: %v", err)
	}
	p := res.Propagation[0]
	if p.Ours.N != 6 || p.Floor.N != 6 {
		t.Fatalf("measured %d changes (floor %d), want 6", p.Ours.N, p.Floor.N)
	}
	if p.Ours.P50Ms <= 0 || p.Ours.MaxMs < p.Ours.P99Ms || p.Floor.P50Ms <= 0 || p.RatioP99 <= 0 {
		t.Errorf("implausible latencies: %+v floor %+v", p.Ours, p.Floor)
	}
	if p.GoroutinesPer < 1 {
		t.Errorf("goroutines per subscriber %.2f, want ≥ 1", p.GoroutinesPer)
	}
	if err := runIngest(ctx, o, res, io.Discard); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	for _, in := range res.Ingest {
		if in.Accepted <= 0 || in.Rejected != 0 || in.ErrorFrames != 0 || float64(in.Sent) > in.Accepted {
			t.Errorf("%s ingest: sent %d, accepted %.0f, rejected %.0f, error frames %d", in.Transport, in.Sent, in.Accepted, in.Rejected, in.ErrorFrames)
		}
	}
	out := filepath.Join(t.TempDir(), "r.json")
	if err := res.writeJSON(out); err != nil {
		t.Fatal(err)
	}
	res.printTable(io.Discard)
}

// startFloor runs the bare broadcaster in this process.
func startFloor(t *testing.T) *httptest.Server {
	t.Helper()
	b := &broadcaster{conns: map[*bconn]struct{}{}, direct: true}
	b.version.Store(1)
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/subscribe", b.subscribe)
	mux.HandleFunc("/broadcast", b.broadcast)
	floor := httptest.NewServer(mux)
	t.Cleanup(floor.Close)
	return floor
}
