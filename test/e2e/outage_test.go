package e2e

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brownout-io/brownout/sdk"
)

// TestOutageWithSDK runs real SDK clients against the real binary and
// takes the controller away:
//   - while it is down, every client keeps serving the last-known-good
//     state and buffers its reports;
//   - after a restart (SIGKILL, same address and data) every client is back
//     on the current version, without all of them reconnecting at once;
//   - the reports buffered during the outage reach the controller.
func TestOutageWithSDK(t *testing.T) {
	const clients = 20
	ctl := startController(t)
	api := newClient(ctl.url(), adminToken)
	const svc = "outage"
	api.must(t, http.MethodPost, "/api/v1/reports", map[string]any{
		"service": svc, "instance": "c-0", "cpu_percent": 10, "memory_percent": 10, "requests": 1, "errors": 0,
	}, http.StatusAccepted, nil)
	var ov struct {
		ID string `json:"id"`
	}
	api.must(t, http.MethodPost, "/api/v1/overrides", map[string]any{"service": svc, "level": 2, "reason": "outage test"}, http.StatusCreated, &ov)
	var tok struct {
		Token string `json:"token"`
	}
	api.must(t, http.MethodPost, "/api/v1/tokens", map[string]string{"scope": "sdk", "service": svc, "name": "outage"}, http.StatusCreated, &tok)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var cs []*sdk.Client
	for i := 0; i < clients; i++ {
		c, err := sdk.Connect(ctx, ctl.url(), svc, "c-"+itoa(i), sdk.WithToken(tok.Token),
			sdk.WithReportInterval(100*time.Millisecond), sdk.WithReportBuffer(1000), sdk.WithLogger(quiet))
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer c.Close()
		cs = append(cs, c)
	}
	waitAll(t, cs, 10*time.Second, "every client on level 2", func(c *sdk.Client) bool {
		return c.Level() == sdk.LevelEssential && c.Stats().Connected
	})
	version := cs[0].Stats().Version

	// Outage.
	ctl.kill()
	waitAll(t, cs, 10*time.Second, "every client noticing the outage", func(c *sdk.Client) bool { return !c.Stats().Connected })
	time.Sleep(1500 * time.Millisecond) // reports pile up
	buffered := 0
	for i, c := range cs {
		st := c.Stats()
		if c.Level() != sdk.LevelEssential || c.State().Source != sdk.SourceController {
			t.Fatalf("client %d during the outage serves level %s from %s, want the last-known-good ESSENTIAL from the controller",
				i, c.Level(), c.State().Source)
		}
		if st.ReportsBuffered == 0 {
			t.Errorf("client %d buffered no reports during the outage", i)
		}
		buffered += st.ReportsBuffered
	}

	// Recovery: track when each client reconnects.
	conns := make([]uint64, clients)
	for i, c := range cs {
		conns[i] = c.Stats().Connections
	}
	ctl.restart()
	restarted := time.Now()
	var mu sync.Mutex
	back := make([]time.Duration, clients)
	waitAll(t, cs, 30*time.Second, "every client reconnected on the current version", func(c *sdk.Client) bool {
		st := c.Stats()
		i := indexOf(cs, c)
		if st.Connections > conns[i] && st.Connected && st.Version >= version && c.Level() == sdk.LevelEssential {
			mu.Lock()
			if back[i] == 0 {
				back[i] = time.Since(restarted)
			}
			mu.Unlock()
			return true
		}
		return false
	})
	buckets := map[time.Duration]int{}
	peak, last := 0, time.Duration(0)
	for _, d := range back {
		b := d.Truncate(100 * time.Millisecond)
		buckets[b]++
		peak = max(peak, buckets[b])
		last = max(last, d)
	}
	if peak > clients/2 {
		t.Errorf("%d of %d clients reconnected within the same 100 ms: a thundering herd (times %v)", peak, clients, back)
	}

	// The buffered reports arrive.
	waitAll(t, cs, 10*time.Second, "every buffer drained", func(c *sdk.Client) bool { return c.Stats().ReportsBuffered == 0 })
	m := scrape(t, ctl.url())
	if got := m[`brownout_reports_ingested_total{transport="ws"}`]; got < float64(buffered) {
		t.Errorf("the restarted controller ingested %.0f websocket reports, want at least the %d buffered during the outage", got, buffered)
	}
	var view struct {
		Instances []struct {
			Name       string     `json:"name"`
			LastReport *time.Time `json:"last_report"`
		} `json:"instances"`
	}
	api.must(t, http.MethodGet, "/api/v1/services/"+svc, nil, http.StatusOK, &view)
	reported := 0
	for _, in := range view.Instances {
		if in.LastReport != nil {
			reported++
		}
	}
	if reported < clients {
		t.Errorf("%d of %d instances have reports after the restart", reported, clients)
	}

	// And the next change still reaches everyone.
	api.must(t, http.MethodDelete, "/api/v1/overrides/"+ov.ID, nil, http.StatusOK, nil)
	waitAll(t, cs, 10*time.Second, "every client on level 0 after the override is cleared", func(c *sdk.Client) bool {
		return c.Level() == sdk.LevelFull
	})
	t.Logf("%d clients: last back %s after restart, peak %d per 100 ms; %d reports buffered during the outage",
		clients, last.Round(time.Millisecond), peak, buffered)
}

func indexOf(cs []*sdk.Client, c *sdk.Client) int {
	for i := range cs {
		if cs[i] == c {
			return i
		}
	}
	return -1
}

// waitAll polls until ok holds for every client.
func waitAll(t *testing.T, cs []*sdk.Client, timeout time.Duration, what string, ok func(*sdk.Client) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := 0
		for _, c := range cs {
			if ok(c) {
				n++
			}
		}
		if n == len(cs) {
			return
		}
		if time.Now().After(deadline) {
			var lastErr error
			for _, c := range cs {
				if err := c.Stats().LastError; err != nil {
					lastErr = errors.Join(lastErr, err)
					break
				}
			}
			t.Fatalf("waiting for %s: only %d of %d after %s (a client's last error: %v)", what, n, len(cs), timeout, lastErr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scrape reads /metrics into series → value.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(data), "\n") {
		i := strings.LastIndexByte(line, ' ')
		if line == "" || line[0] == '#' || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
