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
	dir := t.TempDir()
	md := filepath.Join(dir, "BENCH.md")
	if err := os.WriteFile(md, []byte("# Numbers\n\nbefore\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := parseFlash([]string{"--url", srv.URL, "--token", srv.AdminToken,
		"--calibrate", "1s", "--warmup", "300ms", "--steady", "1s", "--burst", "3s", "--after", "2s",
		"--report-every", "200ms", "--timeout", "1s", "--svg", dir, "--bench-md", md, "--json", filepath.Join(dir, "r.json")}, io.Discard)
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
		if len(r.Seconds) != 6 {
			t.Errorf("%s: %d seconds in the series, want 6", r.Kind, len(r.Seconds))
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
	if r := byKind[runNone]; r.MaxLevel != 0 || r.UtilityPct < 50 {
		t.Errorf("no controller: max level %d, utility %.1f %%", r.MaxLevel, r.UtilityPct)
	}
	if r := byKind[runEssential]; r.UtilityPct != 0 || r.OptionalShed != r.Optional || r.Levels[0].Level != 2 {
		t.Errorf("pinned at ESSENTIAL: utility %.1f %%, %d of %d optional shed, levels %v", r.UtilityPct, r.OptionalShed, r.Optional, r.Levels)
	}
	// With Brownout the burst degrades the shop, which serves less optional
	// content than with everything on but more than the floor.
	for _, k := range []string{runBrownout, runShed} {
		r := byKind[k]
		if r.MaxLevel < 1 || r.DegradeS < 0 {
			t.Errorf("%s: never degraded (levels %v)", k, r.Levels)
		}
		if r.UtilityPct <= 0 {
			t.Errorf("%s: utility %.1f %%, want more than the floor's 0", k, r.UtilityPct)
		}
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
		!strings.Contains(s, "brownout-load flash --url") || !strings.Contains(s, "| (c) Brownout + Shed on optional routes |") {
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
