package ui

import (
	"math"
	"slices"
	"strconv"
	"time"
)

// Series is one signal over time; At and V have the same length and At
// ascends.
type Series struct {
	At []time.Time
	V  []float64
}

// Band is a stretch of time spent at one effective level.
type Band struct {
	From, To time.Time
	Level    int
}

// HLine is a horizontal threshold line.
type HLine struct {
	Y     string
	Label string
	Class string
}

// Rect is a level band in chart coordinates.
type Rect struct {
	X, W  string
	Class string
	Title string
}

// Tick is an axis label.
type Tick struct {
	Pos   string
	Label string
}

// Chart is a server-rendered SVG chart, ready for a template.
type Chart struct {
	W, H     string
	ViewBox  string
	PlotX    string
	PlotY    string
	PlotW    string
	PlotH    string
	PlotX2   string
	TickX    string
	MidX     string
	MidY     string
	Path     string
	Lines    []HLine
	Bands    []Rect
	YTicks   []Tick
	XTicks   []Tick
	LabelX   string
	Empty    bool
	Title    string
	Summary  string
	Sparkish bool
}

// ChartSpec says how to draw a series.
type ChartSpec struct {
	Title      string
	From, To   time.Time
	Step       time.Duration
	YMax       float64
	Thresholds []float64 // enter thresholds of levels 1, 2, 3
	Bands      []Band
	Format     func(float64) string
	Width      float64
	Height     float64
	// Spark draws a bare sparkline: no axes, no labels.
	Spark bool
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// Build lays out s according to spec.
func Build(s Series, spec ChartSpec) Chart {
	left, right, top, bottom := 40.0, 70.0, 6.0, 20.0
	if spec.Spark {
		left, right, top, bottom = 0, 0, 2, 2
	}
	pw := spec.Width - left - right
	ph := spec.Height - top - bottom
	c := Chart{
		W: f1(spec.Width), H: f1(spec.Height), ViewBox: "0 0 " + f1(spec.Width) + " " + f1(spec.Height),
		PlotX: f1(left), PlotY: f1(top), PlotW: f1(pw), PlotH: f1(ph), LabelX: f1(left + pw + 4),
		PlotX2: f1(left + pw), TickX: f1(left - 4), MidX: f1(left + pw/2), MidY: f1(top + ph/2),
		Title: spec.Title, Sparkish: spec.Spark,
	}
	ymax := spec.YMax
	for _, v := range s.V {
		if v > ymax {
			ymax = v
		}
	}
	if ymax <= 0 {
		ymax = 1
	}
	span := spec.To.Sub(spec.From).Seconds()
	if span <= 0 {
		span = 1
	}
	x := func(t time.Time) float64 {
		return left + math.Max(0, math.Min(1, t.Sub(spec.From).Seconds()/span))*pw
	}
	y := func(v float64) float64 { return top + ph - math.Max(0, math.Min(1, v/ymax))*ph }

	for _, b := range spec.Bands {
		if b.Level <= 0 || !b.To.After(spec.From) || !b.From.Before(spec.To) {
			continue
		}
		x0, x1 := x(b.From), x(b.To)
		if x1-x0 < 0.5 {
			x1 = x0 + 0.5
		}
		c.Bands = append(c.Bands, Rect{X: f1(x0), W: f1(x1 - x0), Class: "band " + LevelClass(b.Level), Title: LevelLabel(b.Level)})
	}
	for i, th := range spec.Thresholds {
		if th <= 0 || th > ymax {
			continue
		}
		lbl := ""
		if !spec.Spark {
			lbl = "L" + strconv.Itoa(i+1) + " " + spec.Format(th)
		}
		c.Lines = append(c.Lines, HLine{Y: f1(y(th)), Label: lbl, Class: "th " + LevelClass(i+1)})
	}

	buf := make([]byte, 0, len(s.V)*14)
	// A line breaks only where data is missing: more than 2.5 steps
	// without a point. The step is the larger of the requested one and the
	// points' own typical spacing, since a store may answer a range from
	// coarser rollups than asked for.
	gap := 2.5 * math.Max(spec.Step.Seconds(), medianSpacing(s.At))
	for i := range s.V {
		move := i == 0 || (gap > 0 && s.At[i].Sub(s.At[i-1]).Seconds() > gap)
		if move {
			buf = append(buf, 'M')
		} else {
			buf = append(buf, 'L')
		}
		buf = strconv.AppendFloat(buf, x(s.At[i]), 'f', 1, 64)
		buf = append(buf, ' ')
		buf = strconv.AppendFloat(buf, y(s.V[i]), 'f', 1, 64)
		// A lone point would not show as a path; give it a short tick.
		if move && (i == len(s.V)-1 || (gap > 0 && s.At[i+1].Sub(s.At[i]).Seconds() > gap)) {
			buf = append(buf, 'h', '1', '.', '5')
		}
	}
	c.Path = string(buf)
	c.Empty = len(s.V) == 0

	if !spec.Spark {
		for _, f := range []float64{0, 0.5, 1} {
			c.YTicks = append(c.YTicks, Tick{Pos: f1(y(f*ymax) + 3), Label: spec.Format(f * ymax)})
		}
		layout := "15:04"
		if spec.To.Sub(spec.From) > 36*time.Hour {
			layout = "Jan 2 15:04"
		}
		for _, f := range []float64{0, 0.5, 1} {
			t := spec.From.Add(time.Duration(f * float64(spec.To.Sub(spec.From))))
			c.XTicks = append(c.XTicks, Tick{Pos: f1(left + f*pw), Label: t.UTC().Format(layout)})
		}
	}
	if len(s.V) > 0 {
		lo, hi := s.V[0], s.V[0]
		for _, v := range s.V {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		c.Summary = spec.Title + ": latest " + spec.Format(s.V[len(s.V)-1]) + ", min " + spec.Format(lo) + ", max " + spec.Format(hi)
	} else {
		c.Summary = spec.Title + ": no data in this range"
	}
	return c
}

// medianSpacing is the median distance in seconds between neighbouring
// points (0 with fewer than two).
func medianSpacing(at []time.Time) float64 {
	if len(at) < 2 {
		return 0
	}
	d := make([]float64, 0, len(at)-1)
	for i := 1; i < len(at); i++ {
		d = append(d, at[i].Sub(at[i-1]).Seconds())
	}
	slices.Sort(d)
	return d[len(d)/2]
}

func anchor(i, n int) string {
	switch i {
	case 0:
		return "start"
	case n - 1:
		return "end"
	}
	return "middle"
}
