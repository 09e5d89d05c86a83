package main

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
)

var levelNames = [...]string{"FULL", "REDUCED", "ESSENTIAL", "MAINTENANCE"}

func levelName(l int) string {
	if l >= 0 && l < len(levelNames) {
		return levelNames[l]
	}
	return "?"
}

func secs(s float64) string {
	if s < 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f s", s)
}

func (r *FlashResults) timeline(run *FlashRun) string {
	var b strings.Builder
	for i, l := range run.Levels {
		if i > 0 {
			b.WriteString(" → ")
		}
		fmt.Fprintf(&b, "%.1fs %s", l.At, levelName(l.Level))
	}
	return b.String()
}

func (r *FlashResults) printTable(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "\nmachine: %d CPUs (%s), %s; before: %s; after: %s\n", m.CPUs, m.CPUModel, m.GoVersion, r.UptimeBefore, r.UptimeAfter)
	fmt.Fprintf(w, "flash: %.0f req/s steady, %.0f× for %.0f s after %.0f s, then %.0f s steady; shop --work %d", r.Rate, r.Factor, r.BurstS, r.SteadyS, r.AfterS, r.Work)
	if r.CPUPerReqMs > 0 {
		fmt.Fprintf(w, " (calibrated: %.2f ms CPU per request with every feature on)", r.CPUPerReqMs)
	}
	fmt.Fprintf(w, "\nSLO: essential p99 ≤ %.1f ms (%s) and success ≥ 99.9 %%\n", r.SLOMs, r.SLOBasis)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tessential\tp50\tp95\tp99\tburst p99\tsuccess\tutility\tburst utility\tdegrade\trecover\tmax level\tshop CPU steady/burst\tmachine steady/burst\tSLO\t")
	for _, x := range r.Runs {
		fmt.Fprintf(tw, "%s\t%d\t%.1f ms\t%.1f ms\t%.1f ms\t%.1f ms\t%.2f %%\t%.1f %%\t%.1f %%\t%s\t%s\t%s\t%.0f/%.0f %%\t%.0f/%.0f %%\t%s\t\n",
			x.Kind, x.Essential, x.P50Ms, x.P95Ms, x.P99Ms, x.BurstP99Ms, x.SuccessPct, x.UtilityPct, x.BurstUtility,
			secs(x.DegradeS), secs(x.RecoverS), levelName(x.MaxLevel), x.ShopCPUSteady, x.ShopCPUBurst, x.MachineSteady, x.MachineBurst, verdict(x.MeetsSLO))
	}
	tw.Flush()
	for _, x := range r.Runs {
		fmt.Fprintf(w, "  %s: levels %s; failures: %d timeouts, %d dropped, %d 5xx, %d other; optional requests %d (%d shed)\n",
			x.Kind, r.timeline(x), x.Timeouts, x.Dropped, x.Status5xx, x.OtherFail, x.Optional, x.OptionalShed)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
}

func verdict(ok bool) string {
	if ok {
		return "meets"
	}
	return "breaks"
}

func (r *FlashResults) markdown(c *flashConfig) string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "Written by the tool on %s; %d CPUs (%s), %s. `uptime` before: %s; after: %s.\n\n",
		r.StartedAt.Format("2006-01-02 15:04 UTC"), m.CPUs, m.CPUModel, m.GoVersion, r.UptimeBefore, r.UptimeAfter)
	fmt.Fprintf(&b, "```sh\nmake build\n%s\n```\n\n", r.Command)
	fmt.Fprintf(&b, "Profile: %.0f req/s for %.0f s, %.0f× (%.0f req/s) for %.0f s, %.0f req/s for %.0f s; open loop (latency from each request's scheduled send time, a request unanswered after %s fails). ",
		r.Rate, r.SteadyS, r.Factor, r.Rate*r.Factor, r.BurstS, r.Rate, r.AfterS, c.timeout)
	if r.CPUPerReqMs > 0 {
		fmt.Fprintf(&b, "The steady rate was calibrated on this run: %.2f ms of shop CPU per request with every feature on, so that the shop keeps %.0f %% of the machine busy. ", r.CPUPerReqMs, c.busy*100)
	}
	fmt.Fprintf(&b, "Mix: 75 %% product pages and 10 %% checkouts (essential), 15 %% the recommendations API (optional). Utility = optional parts served / optional parts a full answer carries (4 per product page, 1 per recommendations call). The shop reports every %s.\n\n", r.ReportEvery)
	fmt.Fprintf(&b, "**SLO: essential p99 ≤ %.1f ms** (%s) with success ≥ 99.9 %%.\n\n", r.SLOMs, r.SLOBasis)
	b.WriteString("| run | essential p50 | p95 | p99 | p99 in the burst | success | utility | utility in the burst | time to degrade | time to recover | highest level | shop CPU steady / burst | SLO |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |\n")
	for _, x := range r.Runs {
		fmt.Fprintf(&b, "| %s | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.2f %% | %.1f %% | %.1f %% | %s | %s | %s | %.0f / %.0f %% | %s |\n",
			x.Label, x.P50Ms, x.P95Ms, x.P99Ms, x.BurstP99Ms, x.SuccessPct, x.UtilityPct, x.BurstUtility,
			secs(x.DegradeS), secs(x.RecoverS), levelName(x.MaxLevel), x.ShopCPUSteady, x.ShopCPUBurst, verdict(x.MeetsSLO))
	}
	b.WriteString("\nLevel timelines (as the shop served them, seconds from the start of the profile; the burst is ")
	fmt.Fprintf(&b, "%.0f–%.0f s):\n\n", r.SteadyS, r.SteadyS+r.BurstS)
	for _, x := range r.Runs {
		fmt.Fprintf(&b, "- %s: %s\n", x.Label, r.timeline(x))
	}
	fmt.Fprintf(&b, "\n![Essential latency per second with the level shaded](docs/%s-latency.svg)\n\n", c.name)
	fmt.Fprintf(&b, "![Share of optional content served per second](docs/%s-utility.svg)\n", c.name)
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "\nError: %s\n", e)
	}
	return b.String()
}

// rewriteSection replaces the text between <!-- NAME:begin --> and
// <!-- NAME:end --> in path with body, or appends a new section.
func rewriteSection(path, name, body string) error {
	begin, end := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	block := begin + "\n" + body + end
	s := string(old)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	switch {
	case i >= 0 && j > i:
		s = s[:i] + block + s[j+len(end):]
	default:
		if s != "" && !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		s += "\n" + block + "\n"
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// svg is a minimal SVG writer.
type svg struct{ b bytes.Buffer }

func (s *svg) f(format string, args ...any) { fmt.Fprintf(&s.b, format, args...) }

func (s *svg) text(x, y float64, anchor, class, t string) {
	s.f(`<text x="%.1f" y="%.1f" text-anchor="%s" class="%s">%s</text>`+"\n", x, y, anchor, class, html.EscapeString(t))
}

var levelFill = [...]string{"none", "#fde68a", "#fdba74", "#fca5a5"}

var runColors = map[string]string{runNone: "#b91c1c", runBrownout: "#1d4ed8", runShed: "#047857", runEssential: "#6b7280"}

const svgStyle = `<style>text{font-family:DejaVu Sans,Arial,sans-serif;font-size:12px;fill:#111}.t{font-size:13px;font-weight:bold}.s{font-size:11px;fill:#444}</style>`

// latencySVG draws, per run, the essential p50 and p99 of each second on a
// log scale, the level the shop served shaded behind them, the burst and
// the SLO.
func latencySVG(r *FlashResults) []byte {
	const w, ph, left, right, top = 960.0, 190.0, 60.0, 20.0, 30.0
	total := r.SteadyS + r.BurstS + r.AfterS
	h := top + float64(len(r.Runs))*(ph+45) + 30
	var s svg
	s.f(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f">`+"\n%s\n", w, h, w, h, svgStyle)
	s.f(`<rect width="100%%" height="100%%" fill="#fff"/>` + "\n")
	s.text(left, 18, "start", "t", fmt.Sprintf("Essential requests: p50 (thin) and p99 (thick) per second; %.0f req/s steady, %.0f× burst; shading = level served", r.Rate, r.Factor))
	lo, hi := 0.1, 10000.0
	ymap := func(y0, v float64) float64 {
		v = math.Min(math.Max(v, lo), hi)
		return y0 + ph - (math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*ph
	}
	xmap := func(t float64) float64 { return left + t/total*(w-left-right) }
	for k, run := range r.Runs {
		y0 := top + float64(k)*(ph+45) + 20
		s.text(left, y0-6, "start", "t", fmt.Sprintf("%s — p99 %.1f ms, success %.2f %%, utility %.1f %% (%s the SLO)", run.Label, run.P99Ms, run.SuccessPct, run.UtilityPct, verdict(run.MeetsSLO)))
		// level bands
		for i, l := range run.Levels {
			end := total
			if i+1 < len(run.Levels) {
				end = run.Levels[i+1].At
			}
			if l.Level > 0 && l.Level < len(levelFill) {
				s.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" opacity="0.7"/>`+"\n", xmap(l.At), y0, math.Max(0.5, xmap(math.Min(end, total))-xmap(l.At)), ph, levelFill[l.Level])
			}
		}
		s.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#999"/>`+"\n", left, y0, w-left-right, ph)
		// burst markers
		for _, t := range []float64{r.SteadyS, r.SteadyS + r.BurstS} {
			s.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555" stroke-dasharray="4 3"/>`+"\n", xmap(t), y0, xmap(t), y0+ph)
		}
		// y grid
		for v := lo; v <= hi; v *= 10 {
			y := ymap(y0, v)
			s.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y, w-right, y)
			s.text(left-4, y+4, "end", "s", fmtMs(v))
		}
		if r.SLOMs > 0 {
			y := ymap(y0, r.SLOMs)
			s.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#7c3aed" stroke-width="1.5" stroke-dasharray="8 4"/>`+"\n", left, y, w-right, y)
			s.text(w-right-4, y-4, "end", "s", fmt.Sprintf("SLO %.1f ms", r.SLOMs))
		}
		for _, series := range []struct {
			get   func(Second) float64
			width float64
		}{{func(x Second) float64 { return x.P50Ms }, 1}, {func(x Second) float64 { return x.P99Ms }, 2.2}} {
			var pts []string
			for _, sec := range run.Seconds {
				if v := series.get(sec); v > 0 {
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", xmap(float64(sec.T)+0.5), ymap(y0, v)))
				}
			}
			if len(pts) > 0 {
				s.f(`<polyline fill="none" stroke="%s" stroke-width="%.1f" points="%s"/>`+"\n", runColors[run.Kind], series.width, strings.Join(pts, " "))
			}
		}
		// failures: a red tick above each second with success < 99.9 %
		for _, sec := range run.Seconds {
			if sec.Offered > 0 && sec.SuccessPct < 99.9 {
				s.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="5" fill="#dc2626"><title>%ds: %.1f %% success</title></rect>`+"\n",
					xmap(float64(sec.T)), y0+ph+2, math.Max(1, xmap(1)-xmap(0)), sec.T, sec.SuccessPct)
			}
		}
		for t := 0.0; t <= total; t += 60 {
			s.text(xmap(t), y0+ph+18, "middle", "s", fmt.Sprintf("%.0f s", t))
		}
	}
	ly := h - 10
	x := left
	for l := 1; l < len(levelFill); l++ {
		s.f(`<rect x="%.1f" y="%.1f" width="14" height="10" fill="%s"/>`+"\n", x, ly-9, levelFill[l])
		s.text(x+18, ly, "start", "s", levelName(l))
		x += 110
	}
	s.text(x, ly, "start", "s", "red ticks: seconds with essential success < 99.9 %")
	s.f("</svg>\n")
	return s.b.Bytes()
}

func fmtMs(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.0f s", v/1000)
	}
	if v < 1 {
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// utilitySVG draws the share of optional content served per second, one
// line per run, with the burst shaded.
func utilitySVG(r *FlashResults) []byte {
	const w, ph, left, right, top = 960.0, 260.0, 60.0, 20.0, 40.0
	total := r.SteadyS + r.BurstS + r.AfterS
	h := top + ph + 40 + 20*float64(len(r.Runs))
	var s svg
	s.f(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f">`+"\n%s\n", w, h, w, h, svgStyle)
	s.f(`<rect width="100%%" height="100%%" fill="#fff"/>` + "\n")
	s.text(left, 18, "start", "t", "Utility: share of optional content served per second (the Brownout paper's utility)")
	xmap := func(t float64) float64 { return left + t/total*(w-left-right) }
	ymap := func(v float64) float64 { return top + ph - v/100*ph }
	s.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#e5e7eb"/>`+"\n", xmap(r.SteadyS), top, xmap(r.SteadyS+r.BurstS)-xmap(r.SteadyS), ph)
	s.text(xmap(r.SteadyS)+4, top+14, "start", "s", fmt.Sprintf("%.0f× burst", r.Factor))
	for v := 0.0; v <= 100; v += 25 {
		s.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, ymap(v), w-right, ymap(v))
		s.text(left-4, ymap(v)+4, "end", "s", fmt.Sprintf("%.0f %%", v))
	}
	s.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#999"/>`+"\n", left, top, w-left-right, ph)
	for t := 0.0; t <= total; t += 60 {
		s.text(xmap(t), top+ph+16, "middle", "s", fmt.Sprintf("%.0f s", t))
	}
	for k, run := range r.Runs {
		var pts []string
		for _, sec := range run.Seconds {
			if sec.Offered > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", xmap(float64(sec.T)+0.5), ymap(sec.UtilityPct)))
			}
		}
		if len(pts) > 0 {
			s.f(`<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", runColors[run.Kind], strings.Join(pts, " "))
		}
		ly := top + ph + 36 + 20*float64(k)
		s.f(`<rect x="%.1f" y="%.1f" width="18" height="4" fill="%s"/>`+"\n", left, ly-5, runColors[run.Kind])
		s.text(left+24, ly, "start", "s", fmt.Sprintf("%s: %.1f %% overall, %.1f %% in the burst; essential p99 %.1f ms, success %.2f %%",
			run.Label, run.UtilityPct, run.BurstUtility, run.P99Ms, run.SuccessPct))
	}
	s.f("</svg>\n")
	return s.b.Bytes()
}
