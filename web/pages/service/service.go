// Package service is one service's page: live status and instances,
// signal charts over a chosen range, the level timeline, the flag matrix
// and the editors for its thresholds, flag sets and overrides.
package service

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/controller"
	"github.com/brownout-io/brownout/internal/featureflags"
	"github.com/brownout-io/brownout/internal/levels"
	"github.com/brownout-io/brownout/web/ui"
)

// Fragment ids the hub replaces.
const (
	StatusID    = "svc-status"
	InstancesID = "instances"
)

// Model is the service page.
type Model struct {
	Meta       ui.Meta
	Status     Status
	Range      string
	Ranges     []string
	Charts     []ui.Chart
	Timeline   []ui.Change
	Flags      FlagMatrix
	FlagsError string
	Thresholds ThresholdForm
	Overrides  []brownout.Override
	Override   OverrideForm
}

// Status is the live part of the page.
type Status struct {
	Name        string
	Level       int
	Computed    int
	Version     uint64
	Override    *brownout.Override
	Stale       bool
	Cause       string
	Detail      string
	ChangedAt   time.Time
	CPU         string
	Mem         string
	Err         string
	Live        int
	OnCurrent   int
	Versions    string
	Behind      string
	Slowest     string
	LastReport  time.Time
	Instances   []Instance
	CustomTh    bool
	CustomFlags bool
}

// Instance is one row of the instances table.
type Instance struct {
	Name       string
	Stale      bool
	Connected  bool
	LastSeen   time.Time
	LastReport time.Time
	Version    uint64
	Current    bool
	AckLatency string
	CPU        string
	Mem        string
	Err        string
	Components []Component
}

// Component is a breaker, bulkhead or limiter an instance reports.
type Component struct {
	Name    string
	Kind    string
	State   string
	Metrics string
}

// What the service page shows of each instance, so that the page stays
// small however much instances report: the first MaxInstances instances
// (by name), their first MaxComponents components with the first
// MaxMetrics metrics each; the API has the rest.
const (
	MaxInstances  = 50
	MaxComponents = 16
	MaxMetrics    = 8
)

// StatusOf builds the live part from a service view.
func StatusOf(v controller.ServiceView) Status {
	s := Status{
		Name: v.Name, Level: v.Level, Computed: v.ComputedLevel, Version: v.Version, Override: v.Override,
		Stale: v.Stale, Cause: v.Cause, Detail: v.Detail, ChangedAt: v.ChangedAt,
		CPU: ui.Pct(v.Signals.CPUPercent), Mem: ui.Pct(v.Signals.MemoryPercent), Err: ui.Rate(v.Signals.ErrorRate),
		Live: v.Convergence.Live, OnCurrent: v.Convergence.OnCurrent, Behind: strings.Join(v.Convergence.Behind, ", "),
		CustomTh: v.CustomThresholds, CustomFlags: v.CustomFlags,
	}
	if v.LastReport != nil {
		s.LastReport = *v.LastReport
	}
	if d, err := time.ParseDuration(v.Convergence.SlowestAck); err == nil {
		s.Slowest = ui.Dur2(d)
	}
	vers := slices.Sorted(maps.Keys(v.Convergence.Versions))
	var parts []string
	for i := len(vers) - 1; i >= 0; i-- {
		parts = append(parts, fmt.Sprintf("v%d × %d", vers[i], v.Convergence.Versions[vers[i]]))
	}
	s.Versions = strings.Join(parts, ", ")
	for _, in := range v.Instances {
		row := Instance{
			Name: in.Name, Stale: in.Stale, Connected: in.Connected, LastSeen: in.LastSeen, Version: in.Version,
			Current: in.Version == v.Version, CPU: ui.Pct(in.CPUPercent), Mem: ui.Pct(in.MemoryPercent), Err: ui.Rate(in.ErrorRate),
		}
		if d, err := time.ParseDuration(in.AckLatency); err == nil {
			row.AckLatency = ui.Dur2(d)
		}
		if in.LastReport != nil {
			row.LastReport = *in.LastReport
		}
		names := slices.Sorted(maps.Keys(in.Components))
		for i, name := range names {
			if i == MaxComponents {
				row.Components = append(row.Components, Component{Name: fmt.Sprintf("… %d more", len(names)-i)})
				break
			}
			cs := in.Components[name]
			var ms []string
			for j, k := range slices.Sorted(maps.Keys(cs.Metrics)) {
				if j == MaxMetrics {
					ms = append(ms, fmt.Sprintf("… %d more", len(cs.Metrics)-j))
					break
				}
				ms = append(ms, k+" "+ui.Num(roundTo(cs.Metrics[k], 3)))
			}
			row.Components = append(row.Components, Component{Name: name, Kind: cs.Kind, State: cs.State, Metrics: strings.Join(ms, " · ")})
		}
		s.Instances = append(s.Instances, row)
	}
	return s
}

func roundTo(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if v < 0 {
		return -float64(int64(-v*p+0.5)) / p
	}
	return float64(int64(v*p+0.5)) / p
}

// Ranges the charts offer, with the step that keeps them near 100–200
// points.
var Ranges = []struct {
	Name string
	Span time.Duration
	Step time.Duration
}{
	{"15m", 15 * time.Minute, 10 * time.Second},
	{"1h", time.Hour, 30 * time.Second},
	{"24h", 24 * time.Hour, 10 * time.Minute},
	{"7d", 7 * 24 * time.Hour, time.Hour},
}

// Charts builds the three signal charts with threshold lines and level
// bands.
func Charts(th levels.Thresholds, from, to time.Time, step time.Duration, pts []brownout.SamplePoint, bands []ui.Band) []ui.Chart {
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
	errMax := 0.3
	if len(te) == 3 {
		errMax = te[2] * 1.2
	}
	spec := func(title string, ymax float64, ths []float64, f func(float64) string) ui.ChartSpec {
		return ui.ChartSpec{Title: title, From: from, To: to, Step: step, YMax: ymax, Thresholds: ths, Bands: bands,
			Format: f, Width: 400, Height: 180}
	}
	return []ui.Chart{
		ui.Build(ui.Series{At: at, V: cv}, spec("CPU", 100, tc, ui.Pct0)),
		ui.Build(ui.Series{At: at, V: mv}, spec("Memory", 100, tm, ui.Pct0)),
		ui.Build(ui.Series{At: at, V: ev}, spec("Error rate", errMax, te, ui.Rate1)),
	}
}

// Bands turns effective level changes (newest first, as history lists
// them) into stretches of time at one level between from and to; current
// is the level now.
func Bands(changes []brownout.LevelChange, from, to time.Time, current int) []ui.Band {
	var eff []brownout.LevelChange
	for _, c := range changes {
		if c.Kind == brownout.KindEffective || c.Kind == "" {
			eff = append(eff, c)
		}
	}
	sort.Slice(eff, func(i, j int) bool { return eff[i].At.Before(eff[j].At) })
	level := current
	if len(eff) > 0 {
		level = eff[0].FromLevel
	}
	var out []ui.Band
	start := from
	for _, c := range eff {
		if c.At.After(start) {
			out = append(out, ui.Band{From: start, To: c.At, Level: level})
		}
		start, level = c.At, c.ToLevel
	}
	if to.After(start) {
		out = append(out, ui.Band{From: start, To: to, Level: level})
	}
	return out
}

// FlagMatrix is flags × levels.
type FlagMatrix struct {
	Current int
	Rows    []FlagRow
}

// FlagRow is one flag across the four levels.
type FlagRow struct {
	Name string
	On   [4]bool
	// Own marks levels where the service's own set decides the flag.
	Own [4]bool
	// Global tells whether the global set names the flag.
	Global bool
}

// MatrixOf builds the matrix from the global set and the service's own.
func MatrixOf(global, own featureflags.Set, current int) FlagMatrix {
	eff := featureflags.Merge(global, own)
	g := featureflags.Merge(global, featureflags.Set{})
	m := FlagMatrix{Current: current}
	for _, name := range slices.Sorted(maps.Keys(eff[0])) {
		row := FlagRow{Name: name}
		_, row.Global = g[0][name]
		for l := range 4 {
			row.On[l] = eff[l][name]
		}
		for _, lf := range own.Levels {
			if _, ok := lf.Flags[name]; ok && lf.Level >= 0 && lf.Level < 4 {
				row.Own[lf.Level] = true
			}
		}
		m.Rows = append(m.Rows, row)
	}
	return m
}

// ThresholdForm holds the thresholds editor's values as text, so that what
// an operator typed survives a refused save.
type ThresholdForm struct {
	Cooldown string
	// Cells[level-1][signal][0 enter, 1 exit]
	Cells  [3][3][2]string
	Custom bool
	Error  string
	Field  string
}

// Signals in editor order.
var Signals = []string{levels.SignalCPU, levels.SignalMemory, levels.SignalErrorRate}

// SignalLabel names a signal for people.
func SignalLabel(s string) string {
	switch s {
	case levels.SignalCPU:
		return "CPU %"
	case levels.SignalMemory:
		return "Memory %"
	}
	return "Error rate (0–1)"
}

// FieldName is the form field of a cell; it is the same path the
// controller names in its validation errors.
func FieldName(level, signal int, exit bool) string {
	k := "enter"
	if exit {
		k = "exit"
	}
	return fmt.Sprintf("levels[%d].%s.%s", level, Signals[signal], k)
}

// FormOf fills the editor from a threshold set.
func FormOf(t levels.Thresholds, custom bool) ThresholdForm {
	f := ThresholdForm{Cooldown: time.Duration(t.Cooldown).String(), Custom: custom}
	for i, lt := range t.Levels {
		if i >= 3 {
			break
		}
		for j, b := range []levels.Bound{lt.CPU, lt.Memory, lt.ErrorRate} {
			f.Cells[i][j] = [2]string{ui.Num(b.Enter), ui.Num(b.Exit)}
		}
	}
	return f
}

// OverrideForm is the per-service override form's state.
type OverrideForm struct {
	Level  string
	Reason string
	TTL    string
	Error  string
	Field  string
}

// invalid marks a field the controller refused.
func invalid(cond bool, describedBy string) templ.Attributes {
	if !cond {
		return templ.Attributes{}
	}
	return templ.Attributes{"aria-invalid": "true", "aria-describedby": describedBy}
}

func levelOptions() []int { return []int{0, 1, 2, 3} }
