package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// procStatusKiB reads a field such as VmRSS or VmHWM of /proc/pid/status.
func procStatusKiB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", field, line)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// floodReport is one report at the protocol's limits: 64 components of 32
// metrics, every name 64 bytes long.
func floodReport(instance string) []byte {
	comps := map[string]any{}
	for c := range 64 {
		name := fmt.Sprintf("c%02d-%s", c, strings.Repeat("x", 60))
		ms := map[string]float64{}
		for m := range 32 {
			ms[fmt.Sprintf("m%02d-%s", m, strings.Repeat("y", 60))] = float64(c*m) + 0.5
		}
		comps[name] = map[string]any{"kind": strings.Repeat("k", 64), "state": strings.Repeat("s", 64), "metrics": ms}
	}
	b, _ := json.Marshal(map[string]any{
		"service": "flood", "instance": instance, "cpu_percent": 10, "memory_percent": 10,
		"requests": 10, "errors": 0, "components": comps,
	})
	return b
}

// TestReportFloodStaysBounded replays the memory finding: one sdk token
// sending 300 reports of 64 components × 32 metrics, each from another
// instance, took the controller from 72 MB to about 1 GB of RSS, and
// GET /services answered 356 MB. Now the components live within a budget,
// lists carry no per-instance detail, and the same flood must leave the
// peak RSS within +100 MiB and GET /services under 1 MiB, also with three
// list calls at once.
func TestReportFloodStaysBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 50 MB of reports")
	}
	ctl := startController(t, strings.Fields(os.Getenv("FLOOD_ARGS"))...)
	admin := newClient(ctl.url(), adminToken)
	var tok struct {
		Token string `json:"token"`
	}
	admin.must(t, http.MethodPost, "/api/v1/tokens", map[string]any{"scope": "sdk", "service": "flood", "name": "flood"}, http.StatusCreated, &tok)
	sdk := newClient(ctl.url(), tok.Token)
	admin.must(t, http.MethodGet, "/api/v1/services", nil, http.StatusOK, nil)
	pid := ctl.cmd.Process.Pid
	before := procStatusKiB(t, pid, "VmRSS")

	var wg sync.WaitGroup
	errs := make(chan error, 300)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 300; i += 4 {
				st, body, err := sdk.do(context.Background(), http.MethodPost, "/api/v1/reports", string(floodReport(fmt.Sprintf("flood-%03d", i))))
				if err != nil || st != http.StatusAccepted {
					errs <- fmt.Errorf("report %d: %d %s %v", i, st, body, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	sizes := make([]int, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, ctl.url()+"/api/v1/services", nil)
			req.Header.Set("Authorization", "Bearer "+adminToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			n, _ := io.Copy(io.Discard, resp.Body)
			sizes[i] = int(n)
		}()
	}
	wg.Wait()
	var one struct {
		InstanceCount int `json:"instance_count"`
	}
	st, body, err := admin.do(context.Background(), http.MethodGet, "/api/v1/services/flood", nil)
	if err != nil || st != http.StatusOK {
		t.Fatalf("GET /services/flood: %d %v", st, err)
	}
	_ = json.Unmarshal(bytes.TrimSpace(body), &one)
	peak := procStatusKiB(t, pid, "VmHWM")
	after := procStatusKiB(t, pid, "VmRSS")
	t.Logf("RSS before %d KiB, after %d KiB, peak %d KiB (+%d MiB); GET /services %v bytes; GET /services/flood %d bytes, %d instances",
		before, after, peak, (peak-before)/1024, sizes, len(body), one.InstanceCount)
	for _, n := range sizes {
		if n == 0 || n >= 1<<20 {
			t.Errorf("GET /services answered %d bytes, want 1 to 1 MiB", n)
		}
	}
	if one.InstanceCount != 300 {
		t.Errorf("service flood has %d instances, want 300 (the reports count even when their components do not fit)", one.InstanceCount)
	}
	if len(body) >= 1<<20 {
		t.Errorf("GET /services/flood answered %d bytes, want under 1 MiB (no components)", len(body))
	}
	if peak-before > 100*1024 {
		t.Errorf("the flood raised peak RSS by %d MiB, want at most 100", (peak-before)/1024)
	}
}
