package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SoakResult is a long run at steady load: subscribers connected, reports
// flowing, an override toggled now and then, RSS and goroutines sampled.
type SoakResult struct {
	Subscribers int           `json:"subscribers"`
	Reports     int           `json:"reports_per_s"`
	Seconds     float64       `json:"seconds"`
	Samples     []SoakSample  `json:"samples"`
	Changes     int           `json:"changes"`
	Accepted    float64       `json:"reports_accepted"`
	Rejected    float64       `json:"reports_rejected"`
	ErrorLines  []string      `json:"error_lines,omitempty"`
	RSSFlat     bool          `json:"rss_flat"`
	GorFlat     bool          `json:"goroutines_flat"`
	Verdict     string        `json:"verdict"`
	Every       time.Duration `json:"every_ns"`
}

// SoakSample is one reading of the controller.
type SoakSample struct {
	At         float64 `json:"at_s"`
	RSSKiB     int64   `json:"rss_kib"`
	Goroutines float64 `json:"goroutines"`
	HeapKiB    float64 `json:"heap_inuse_kib"`
	Connected  int     `json:"connected"`
}

func runSoak(ctx context.Context, o *options, res *Results, log io.Writer) error {
	n := o.subs[0]
	r := &SoakResult{Subscribers: n, Reports: o.reports, Every: o.soakEvery}
	res.Soak = r
	t, err := openTarget(ctx, o, n, "soak")
	if err != nil {
		return err
	}
	defer t.cleanup()
	f := newFleet(t.wsBase(), t.services, t.tokens, n)
	defer f.closeAll()
	if failed, _ := f.connectAll(ctx, o.par); failed > 0 {
		return fmt.Errorf("%d of %d connections failed", failed, n)
	}
	before, err := t.api.metrics(ctx)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, o.soakFor)
	defer cancel()
	start := time.Now()
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		f.pump(sctx, o.reports, o.soakFor)
	}()
	sample := func() {
		rss, g, _ := t.sample(ctx)
		m, _ := t.api.metrics(ctx)
		s := SoakSample{At: time.Since(start).Seconds(), RSSKiB: rss, Goroutines: g, HeapKiB: m["go_memstats_heap_inuse_bytes"] / 1024, Connected: f.connected()}
		r.Samples = append(r.Samples, s)
		o.logf(log, "soak: %5.0fs RSS %d KiB, heap %.0f KiB, goroutines %.0f, connected %d", s.At, s.RSSKiB, s.HeapKiB, s.Goroutines, s.Connected)
	}
	sample()
	every := time.NewTicker(o.soakEvery)
	defer every.Stop()
	change := time.NewTicker(10 * time.Second)
	defer change.Stop()
	id := ""
loop:
	for {
		select {
		case <-sctx.Done():
			break loop
		case <-every.C:
			sample()
		case <-change.C:
			// Toggle an override, so that pushes and acks flow too.
			if id == "" {
				var ov struct {
					ID string `json:"id"`
				}
				if _, err := t.api.do(ctx, http.MethodPost, "/api/v1/overrides", map[string]any{"service": "*", "level": 1, "reason": "soak"}, &ov); err == nil {
					id = ov.ID
					r.Changes++
				}
			} else if _, err := t.api.do(ctx, http.MethodDelete, "/api/v1/overrides/"+id, nil, nil); err == nil {
				id = ""
				r.Changes++
			}
		}
	}
	<-pumped
	sample()
	r.Seconds = time.Since(start).Seconds()
	after, err := t.api.metrics(ctx)
	if err != nil {
		return err
	}
	r.Accepted = after[`brownout_reports_ingested_total{transport="ws"}`] - before[`brownout_reports_ingested_total{transport="ws"}`]
	for k, v := range after {
		if strings.HasPrefix(k, "brownout_reports_rejected_total{") {
			r.Rejected += v - before[k]
		}
	}
	if t.proc != nil {
		r.ErrorLines = errorLines(filepath.Join(t.proc.dataDir, "controller.log"))
	}
	r.RSSFlat, r.GorFlat = flatness(r.Samples, n)
	switch {
	case len(r.Samples) < 4:
		r.Verdict = "too short to judge"
	case r.RSSFlat && r.GorFlat && len(r.ErrorLines) == 0:
		r.Verdict = "flat"
	default:
		r.Verdict = "NOT flat"
		if len(r.ErrorLines) > 0 {
			r.Verdict += fmt.Sprintf(" (%d ERROR lines)", len(r.ErrorLines))
		}
	}
	if r.Verdict == "flat" || r.Verdict == "too short to judge" {
		return nil
	}
	return errors.New("soak: " + r.Verdict)
}

// flatness compares the last third of the samples with the first third,
// after skipping the first quarter of the run (warm-up: the heap grows to
// its working size): RSS may not grow by more than 10 %, goroutines by more
// than 1 % of the subscribers (at least 20).
func flatness(s []SoakSample, subs int) (rss, gor bool) {
	if len(s) < 4 {
		return true, true
	}
	s = s[max(1, len(s)/4):]
	third := max(1, len(s)/3)
	mean := func(xs []SoakSample, f func(SoakSample) float64) float64 {
		var sum float64
		for _, x := range xs {
			sum += f(x)
		}
		return sum / float64(len(xs))
	}
	rssOf := func(x SoakSample) float64 { return float64(x.RSSKiB) }
	gorOf := func(x SoakSample) float64 { return x.Goroutines }
	first, last := s[:third], s[len(s)-third:]
	rss = mean(last, rssOf) <= mean(first, rssOf)*1.10
	gor = mean(last, gorOf)-mean(first, gorOf) <= max(20, float64(subs)/100)
	return rss, gor
}

// errorLines returns the controller's log lines at level ERROR.
func errorLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return []string{"cannot read controller log: " + err.Error()}
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(l, "level=ERROR") || strings.Contains(l, `"level":"ERROR"`) {
			out = append(out, l)
		}
	}
	return out
}
