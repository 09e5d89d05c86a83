package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/app"
	"github.com/brownout-io/brownout/internal/servertest"
)

// TestMain lets the test binary stand in for brownout-load's shop-server
// mode, so that the flash test runs the shop as its own process.
func TestMain(m *testing.M) {
	if os.Getenv("BROWNOUT_LOAD_CHILD") == "shop-server" {
		if err := shopServerCmd(os.Args[1:]); err != nil {
			os.Stderr.WriteString("shop-server: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	// The test binary is also prop's client process (see clientProc).
	if len(os.Args) > 1 && os.Args[1] == "prop-clients" {
		if err := propClientsCmd(os.Args[2:], os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString("prop-clients: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestFlashShort runs the whole flash experiment on a short profile: a
// real controller (in-process, on a real listener and SQLite file), the
// shop as a child process behind the real SDK, the open-loop generator,
// the plots and the BENCHMARKS section.
func TestFlashShort(t *testing.T) {
	srv := servertest.Start(t, servertest.WithConfig(func(c *app.Config) {
		c.Controller.Window = time.Second
		c.Controller.EvalInterval = 100 * time.Millisecond
	}))
	// CI runs this under the race detector next to other packages' tests,
	// so the shop's CPU share is anyone's guess: thresholds that any work
	// crosses make the degradation itself certain, while the steady load
	// stays light (--busy 0.1) so that the run without a controller is not
	// overloaded by its neighbours alone.
	a := newAPI(srv.URL, srv.AdminToken)
	th := map[string]any{"cooldown": "1s", "levels": []map[string]any{
		{"level": 1, "cpu": map[string]float64{"enter": 1, "exit": 0.5}, "memory": map[string]float64{"enter": 97, "exit": 96}, "error_rate": map[string]float64{"enter": 0.9, "exit": 0.8}},
		{"level": 2, "cpu": map[string]float64{"enter": 1.5, "exit": 1}, "memory": map[string]float64{"enter": 98, "exit": 97}, "error_rate": map[string]float64{"enter": 0.95, "exit": 0.9}},
		{"level": 3, "cpu": map[string]float64{"enter": 99, "exit": 98}, "memory": map[string]float64{"enter": 99, "exit": 98}, "error_rate": map[string]float64{"enter": 0.99, "exit": 0.98}},
	}}
	if _, err := a.do(context.Background(), "PUT", "/api/v1/thresholds", th, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	md := filepath.Join(dir, "BENCH.md")
	if err := os.WriteFile(md, []byte("# Numbers\n\nbefore\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := parseFlash([]string{"--url", srv.URL, "--token", srv.AdminToken,
		"--calibrate", "1s", "--busy", "0.1", "--warmup", "200ms", "--steady", "1s", "--burst", "2s", "--after", "1s",
		"--report-every", "200ms", "--timeout", "2s", "--screenshots", filepath.Join(dir, "shots"), "--svg", dir, "--bench-md", md, "--json", filepath.Join(dir, "r.json")}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c.self, c.selfEnv, c.progress = []string{self}, []string{"BROWNOUT_LOAD_CHILD=shop-server"}, false
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := runFlash(ctx, c, io.Discard)
	if err != nil {
		t.Fatalf("flash: %v", err)
	}
	if err := res.write(c); err != nil {
		t.Fatal(err)
	}
	if res.Rate < 1 || res.CPUPerReqMs <= 0 {
		t.Errorf("calibration: rate %.0f, CPU per request %.2f ms", res.Rate, res.CPUPerReqMs)
	}
	if len(res.Runs) != 4 {
		t.Fatalf("%d runs, want 4", len(res.Runs))
	}
	byKind := map[string]*FlashRun{}
	for _, r := range res.Runs {
		byKind[r.Kind] = r
		if r.Essential == 0 || r.Optional == 0 {
			t.Errorf("%s: %d essential, %d optional requests", r.Kind, r.Essential, r.Optional)
		}
		if len(r.Seconds) != 4 {
			t.Errorf("%s: %d seconds in the series, want 4", r.Kind, len(r.Seconds))
		}
		if r.P50Ms <= 0 || r.P99Ms < r.P95Ms || r.P95Ms < r.P50Ms || r.MaxMs < r.P99Ms {
			t.Errorf("%s: implausible latencies %+v", r.Kind, r)
		}
		if len(r.Levels) == 0 {
			t.Errorf("%s: no level timeline", r.Kind)
		}
	}
	// Without a controller every optional part is attempted; pinned at
	// ESSENTIAL none is served and the optional route is shed.
	if r := byKind[runNone]; r.MaxLevel != 0 || r.UtilityPct <= 0 {
		t.Errorf("no controller: max level %d, utility %.1f %%", r.MaxLevel, r.UtilityPct)
	}
	if r := byKind[runEssential]; r.UtilityPct != 0 || r.OptionalShed != r.Optional || r.Levels[0].Level != 2 {
		t.Errorf("pinned at ESSENTIAL: utility %.1f %%, %d of %d optional shed, levels %v", r.UtilityPct, r.OptionalShed, r.Optional, r.Levels)
	}
	// With Brownout the shop's reports reach the controller, whose level
	// reaches the shop, which then serves less optional content; the
	// controller's own record of the change comes back too.
	for _, k := range []string{runBrownout, runShed} {
		r := byKind[k]
		if r.MaxLevel < 1 || len(r.ControllerLog) == 0 {
			t.Errorf("%s: never degraded (levels %v, controller %v)", k, r.Levels, r.ControllerLog)
		}
		if r.UtilityPct >= byKind[runNone].UtilityPct {
			t.Errorf("%s: utility %.1f %%, no controller %.1f %%", k, r.UtilityPct, byKind[runNone].UtilityPct)
		}
	}
	if r := byKind[runShed]; r.OptionalShed == 0 {
		t.Errorf("shed: no optional request shed at ESSENTIAL")
	}
	if r := byKind[runBrownout]; r.OptionalShed != 0 {
		t.Errorf("brownout (no Shed): %d optional requests shed", r.OptionalShed)
	}
	if res.SLOMs <= 0 {
		t.Errorf("SLO %.1f ms", res.SLOMs)
	}

	for _, name := range []string{"flash-latency.svg", "flash-utility.svg"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if n := wellFormed(t, data); n < 10 {
			t.Errorf("%s: %d elements", name, n)
		}
		if !bytes.Contains(data, []byte("<polyline")) {
			t.Errorf("%s has no lines", name)
		}
	}
	for _, name := range []string{"flash-dashboard.png", "flash-dashboard-phone.png"} {
		data, err := os.ReadFile(filepath.Join(dir, "shots", name))
		if err != nil || !bytes.HasPrefix(data, []byte("\x89PNG")) || len(data) < 10000 {
			t.Errorf("screenshot %s: %d bytes, %v", name, len(data), err)
		}
	}
	var back FlashResults
	data, err := os.ReadFile(filepath.Join(dir, "r.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &back); err != nil || len(back.Runs) != 4 {
		t.Fatalf("json: %v, %d runs", err, len(back.Runs))
	}
	// The section is replaced in place, not appended again.
	if err := res.write(c); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(md)
	if s := string(got); strings.Count(s, "<!-- flash:begin -->") != 1 || !strings.HasPrefix(s, "# Numbers\n\nbefore\n") ||
		!strings.Contains(s, "brownout-load flash --url") || !strings.Contains(s, "| (c) Brownout + Shed and a bulkhead on optional work |") {
		t.Errorf("BENCHMARKS section:\n%s", s)
	}
}

func wellFormed(t *testing.T, data []byte) int {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(data))
	n := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatalf("svg is not well-formed XML: %v", err)
		}
		if _, ok := tok.(xml.StartElement); ok {
			n++
		}
	}
}
