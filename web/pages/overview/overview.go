// Package overview is the dashboard's front page: every service as a card,
// worst first, kept live by the hub.
package overview

import (
	"strconv"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/controller"
	"github.com/brownout-io/brownout/internal/levels"
	"github.com/brownout-io/brownout/web/ui"
)

// Fragment ids the hub replaces.
const (
	ListID    = "services"
	SummaryID = "summary"
	// ListOpen and ListClose wrap the cards; the hub concatenates cards it
	// has already rendered between them.
	ListOpen  = `<ol id="services" class="cards" aria-label="Services, worst level first">`
	ListClose = `</ol>`
	// EmptyItem stands in the list while no service exists.
	EmptyItem = `<li class="empty">No service has reported yet. Cards appear here as soon as the first report arrives.</li>`
)

// CardID is the element id of a service's card.
func CardID(service string) string { return "svc-" + service }

// Model is the overview page.
type Model struct {
	Meta    ui.Meta
	Summary Summary
	Cards   []Card
	// Replicas is the replica set, by ID.
	Replicas []brownout.Replica
}

// LagText shows a change feed lag in milliseconds.
func LagText(ms float64) string {
	if ms <= 0 {
		return "—"
	}
	return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
}

// Summary counts services by level.
type Summary struct {
	Total   int
	ByLevel [4]int
	Stale   int
}

// SummaryOf counts views.
func SummaryOf(views []controller.ServiceView) Summary {
	s := Summary{Total: len(views)}
	for _, v := range views {
		if v.Level >= 0 && v.Level < 4 {
			s.ByLevel[v.Level]++
		}
		if v.Stale {
			s.Stale++
		}
	}
	return s
}

// Card is one service on the overview.
type Card struct {
	Name     string
	Level    int
	Computed int
	Version  uint64
	Override *brownout.Override
	Stale    bool
	Detail   string
	CPU      string
	Mem      string
	Err      string
	// Sparks are the CPU, memory and error-rate sparklines, as SVG markup
	// rendered by ui.ChartSVG from Sparks' charts.
	Sparks     [3]string
	LiveN      int
	StaleN     int
	OnCurrent  int
	Subscribed int
	Slowest    string
	LastReport time.Time
	ChangedAt  time.Time
}

// CardOf builds a card from a service view and its rendered sparklines.
func CardOf(v controller.ServiceView, sparks [3]string) Card {
	c := Card{
		Name: v.Name, Level: v.Level, Computed: v.ComputedLevel, Version: v.Version, Override: v.Override,
		Stale: v.Stale, Detail: v.Detail,
		CPU: ui.Pct(v.Signals.CPUPercent), Mem: ui.Pct(v.Signals.MemoryPercent), Err: ui.Rate(v.Signals.ErrorRate),
		OnCurrent: v.Convergence.OnCurrent, Subscribed: v.Convergence.Live, Sparks: sparks, ChangedAt: v.ChangedAt,
	}
	if v.Cause == "initial" {
		c.Detail = "" // "service created" says nothing an operator needs
	}
	if v.LastReport != nil {
		c.LastReport = *v.LastReport
	}
	c.StaleN, c.LiveN = v.StaleInstances, v.InstanceCount-v.StaleInstances
	if d, err := time.ParseDuration(v.Convergence.SlowestAck); err == nil {
		c.Slowest = ui.Dur2(d)
	}
	return c
}

// Why is the card's "why" line as plain text, for its tooltip: the line
// itself is cut to one line so that it never outgrows the state it
// explains.
func (c Card) Why() string {
	switch {
	case c.Override != nil && c.Override.Emergency:
		return "Emergency by " + c.Override.Actor + ": " + c.Override.Reason
	case c.Override != nil:
		return "Override by " + c.Override.Actor + ": " + c.Override.Reason
	case c.Computed != c.Level:
		return "computed " + ui.LevelLabel(c.Computed)
	case c.Stale:
		return "No live instance: level held."
	}
	return c.Detail
}

// Sparks builds the three sparklines of a service over the 15 minutes
// before to.
func Sparks(th levels.Thresholds, to time.Time, pts []brownout.SamplePoint) [3]ui.Chart {
	n := len(pts)
	at := make([]time.Time, n)
	cv, mv, ev := make([]float64, n), make([]float64, n), make([]float64, n)
	for i, p := range pts {
		at[i], cv[i], mv[i], ev[i] = p.At, p.CPUPercent, p.MemoryPercent, p.ErrorRate
	}
	var tc, tm, te []float64
	for _, l := range th.Levels {
		tc, tm, te = append(tc, l.CPU.Enter), append(tm, l.Memory.Enter), append(te, l.ErrorRate.Enter)
	}
	spec := func(title string, ymax float64, ths []float64, f func(float64) string) ui.ChartSpec {
		return ui.ChartSpec{Title: title, From: to.Add(-15 * time.Minute), To: to, Step: 15 * time.Second, YMax: ymax,
			Thresholds: ths, Format: f, Width: 120, Height: 40, Spark: true}
	}
	errMax := 0.3
	if len(te) == 3 {
		errMax = te[2] * 1.2
	}
	return [3]ui.Chart{
		ui.Build(ui.Series{At: at, V: cv}, spec("CPU, last 15 minutes", 100, tc, ui.Pct)),
		ui.Build(ui.Series{At: at, V: mv}, spec("Memory, last 15 minutes", 100, tm, ui.Pct)),
		ui.Build(ui.Series{At: at, V: ev}, spec("Error rate, last 15 minutes", errMax, te, ui.Rate)),
	}
}
