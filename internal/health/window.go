package health

import (
	"sort"
	"time"

	"github.com/brownout-io/brownout/internal/levels"
	"github.com/brownout-io/brownout/sdk/component"
)

// Defaults for the sliding window.
const (
	DefaultWindow     = 30 * time.Second
	DefaultStaleAfter = 30 * time.Second
	// MaxSamplesPerInstance bounds one instance's window whatever its
	// report rate; the oldest sample goes first.
	MaxSamplesPerInstance = 256
	// MinLatestRequests is how many requests the latest reports must
	// count together before their own error rate is taken as a reading:
	// below it (one error in three requests) the latest error rate is the
	// window's.
	MinLatestRequests = 20
)

type sample struct {
	at       time.Time
	cpu, mem float64
	// requests and errors are weights: counts, or 1 and the rate for a
	// client that sends only error_rate.
	requests, errors float64
}

// InstanceStats describe one instance as the window sees it.
type InstanceStats struct {
	Name          string
	LastSeen      time.Time
	Stale         bool
	CPUPercent    float64
	MemoryPercent float64
	ErrorRate     float64
	Requests      float64
	Components    map[string]component.State
}

type instance struct {
	samples  []sample // ordered by arrival; trimmed to the window
	lastSeen time.Time
	last     sample // the report with the latest "at"
	// lastRateOnly: that report sent an error rate, not counts.
	lastRateOnly bool
	components   map[string]component.State
}

// Window is one service's sliding window of reports, per instance. It is
// not safe for concurrent use; its owner serialises access.
type Window struct {
	span, staleAfter time.Duration
	instances        map[string]*instance
	// pending counts what arrived since the last TakeTotals, for history.
	pendingRequests, pendingErrors float64
}

// NewWindow returns an empty window keeping span of reports and leaving
// instances silent for longer than staleAfter out of the aggregate.
func NewWindow(span, staleAfter time.Duration) *Window {
	if span <= 0 {
		span = DefaultWindow
	}
	if staleAfter <= 0 {
		staleAfter = DefaultStaleAfter
	}
	return &Window{span: span, staleAfter: staleAfter, instances: map[string]*instance{}}
}

// Add records a validated report received at now. A report's own "at"
// places it in the window; without one it counts as received now.
func (w *Window) Add(r Report, now time.Time) {
	in := w.instances[r.Instance]
	if in == nil {
		in = &instance{}
		w.instances[r.Instance] = in
	}
	at := now
	if r.At != nil && r.At.Before(now) {
		at = *r.At
	}
	s := sample{at: at, cpu: *r.CPUPercent, mem: *r.MemoryPercent, requests: float64(r.Requests), errors: float64(r.Errors)}
	if r.ErrorRate != nil {
		s.requests, s.errors = 1, *r.ErrorRate
	}
	if len(in.samples) >= MaxSamplesPerInstance {
		// Drop the oldest by reslicing: O(1); append moves the window to
		// a fresh array once the old one's tail is used up.
		in.samples = in.samples[1:]
	}
	in.samples = append(in.samples, s)
	if !at.Before(in.lastSeen) {
		in.lastSeen = at
		in.last = s
		in.lastRateOnly = r.ErrorRate != nil
	}
	if r.Components != nil {
		in.components = r.Components
	}
	w.pendingRequests += s.requests
	w.pendingErrors += s.errors
}

// Signals aggregates the live instances at now over the window: the
// Window half of Observe.
func (w *Window) Signals(now time.Time) (sig levels.Signals, live int) {
	o, live := w.Observe(now)
	return o.Window, live
}

// Observe aggregates the live instances at now. Window: mean CPU and
// memory of each live instance's window, averaged over instances, and
// error rate = Σerrors/Σrequests over the window. Latest: the same over
// each live instance's most recent report, except that the error rate is
// the window's while those reports count fewer than MinLatestRequests
// requests (and none sent a rate of its own). live is the number of
// instances that reported within staleAfter.
func (w *Window) Observe(now time.Time) (o levels.Observed, live int) {
	cutoff := now.Add(-w.span)
	var cpuSum, memSum, req, errs float64
	var lcpu, lmem, lreq, lerrs float64
	rateOnly := false
	for _, in := range w.instances {
		in.trim(cutoff)
		if now.Sub(in.lastSeen) > w.staleAfter || len(in.samples) == 0 {
			continue
		}
		live++
		var c, m float64
		for _, s := range in.samples {
			c += s.cpu
			m += s.mem
			req += s.requests
			errs += s.errors
		}
		n := float64(len(in.samples))
		cpuSum += c / n
		memSum += m / n
		lcpu += in.last.cpu
		lmem += in.last.mem
		lreq += in.last.requests
		lerrs += in.last.errors
		rateOnly = rateOnly || in.lastRateOnly
	}
	if live > 0 {
		o.Window.CPUPercent = cpuSum / float64(live)
		o.Window.MemoryPercent = memSum / float64(live)
		o.Latest.CPUPercent = lcpu / float64(live)
		o.Latest.MemoryPercent = lmem / float64(live)
	}
	if req > 0 {
		o.Window.ErrorRate = errs / req
	}
	o.Latest.ErrorRate = o.Window.ErrorRate
	if lreq > 0 && (lreq >= MinLatestRequests || rateOnly) {
		o.Latest.ErrorRate = lerrs / lreq
	}
	return o, live
}

func (in *instance) trim(cutoff time.Time) {
	// Samples arrive mostly in order, so the old ones sit at the front;
	// a late arrival older than the cutoff behind newer ones is dropped by
	// the filter below only when there is one.
	i := 0
	for i < len(in.samples) && in.samples[i].at.Before(cutoff) {
		i++
	}
	in.samples = in.samples[i:]
	for j, s := range in.samples {
		if s.at.Before(cutoff) {
			kept := in.samples[:j]
			for _, t := range in.samples[j+1:] {
				if !t.at.Before(cutoff) {
					kept = append(kept, t)
				}
			}
			in.samples = kept
			break
		}
	}
	if len(in.samples) == 0 {
		in.samples = nil // let a long-silent instance's array go
	}
}

// TakeTotals returns the requests and errors added since the previous call
// and resets them.
func (w *Window) TakeTotals() (requests, errors float64) {
	requests, errors = w.pendingRequests, w.pendingErrors
	w.pendingRequests, w.pendingErrors = 0, 0
	return requests, errors
}

// Instances describes every known instance, sorted by name.
func (w *Window) Instances(now time.Time) []InstanceStats {
	out := make([]InstanceStats, 0, len(w.instances))
	cutoff := now.Add(-w.span)
	for name, in := range w.instances {
		in.trim(cutoff)
		st := InstanceStats{
			Name: name, LastSeen: in.lastSeen, Stale: now.Sub(in.lastSeen) > w.staleAfter,
			CPUPercent: in.last.cpu, MemoryPercent: in.last.mem, Components: in.components,
		}
		var req, errs float64
		for _, s := range in.samples {
			req += s.requests
			errs += s.errors
		}
		st.Requests = req
		if req > 0 {
			st.ErrorRate = errs / req
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Components returns the components instance last reported (nil when
// none or unknown). The map is the window's: do not change it.
func (w *Window) Components(instance string) map[string]component.State {
	if in := w.instances[instance]; in != nil {
		return in.components
	}
	return nil
}

// Len is the number of known instances.
func (w *Window) Len() int { return len(w.instances) }

// Forget drops instances silent since before cutoff, so that memory stays
// bounded as instances come and go. It returns the names dropped.
func (w *Window) Forget(cutoff time.Time) []string {
	var gone []string
	for name, in := range w.instances {
		if in.lastSeen.Before(cutoff) {
			delete(w.instances, name)
			gone = append(gone, name)
		}
	}
	return gone
}

// LastSeen returns when an instance last reported, and whether it is known.
func (w *Window) LastSeen(name string) (time.Time, bool) {
	in, ok := w.instances[name]
	if !ok {
		return time.Time{}, false
	}
	return in.lastSeen, true
}
