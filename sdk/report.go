package sdk

import (
	"github.com/brownout-io/brownout/sdk/wire"

	"encoding/json"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/brownout-io/brownout/sdk/component"
)

// Record counts one unit of work (a request, a job) and whether it failed.
// It is two atomic additions; call it from any goroutine.
func (c *Client) Record(err error) {
	c.requests.Add(1)
	if err != nil {
		c.errs.Add(1)
	}
}

// Between reports the client probes CPU and memory every probeEvery (or
// every half report interval, if shorter), and reports at once when their
// reading over the last two probes (about half a second) is at least
// earlyJump points above what it last reported, and again while it keeps
// climbing by earlyClimb points after an early report (the first one,
// taken as the burst began, reads only part of it): a burst reaches the
// controller, which escalates on the latest reports, within about half a
// second instead of up to an interval later and diluted over it. A
// report's CPU is the mean over the time since the previous report, as
// before; an early report's is the reading over the last two probes.
const (
	probeEvery = 250 * time.Millisecond
	earlyJump  = 20.0
	earlyClimb = 5.0
)

// runReporter builds a report every interval, and early ones on a jump,
// and queues them for the connection; the ring keeps the newest while
// disconnected.
func (c *Client) runReporter() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.reportInterval)
	defer t.Stop()
	probe := time.NewTicker(min(probeEvery, c.cfg.reportInterval/2))
	defer probe.Stop()
	// Prime the CPU sampler so that the first report covers one interval.
	var p probes
	p.start(c.cfg.sampler.sample())
	for {
		var cpu, mem float64
		select {
		case <-c.ctx.Done():
			return
		case <-probe.C:
			pc, pm := c.cfg.sampler.sample()
			p.add(pc, pm, time.Now())
			var early bool
			if cpu, mem, early = p.early(); !early {
				continue
			}
			p.reported(cpu, mem, true)
		case <-t.C:
			pc, pm := c.cfg.sampler.sample()
			p.add(pc, pm, time.Now())
			cpu, mem = p.mean()
			p.reported(cpu, mem, false)
		}
		if c.Err() != nil {
			return // never again connected: nothing to report to
		}
		c.ring.push(c.buildReportOf(cpu, mem))
		select {
		case c.reportReady <- struct{}{}:
		default:
		}
	}
}

// probes accumulates CPU readings between reports.
type probes struct {
	last           time.Time
	busy, wall     float64    // Σ cpu×seconds and Σ seconds since the last report
	cpu, mem       float64    // the latest readings
	recent         [2]reading // the last two probes, newest first
	sentCPU, sentM float64    // what the last report said
	sentEarly      bool       // the last report was an early one
}

type reading struct{ cpu, secs float64 }

// start begins at a first reading: jumps count from it.
func (p *probes) start(cpu, mem float64) {
	p.last, p.sentCPU, p.sentM = time.Now(), cpu, mem
}

func (p *probes) add(cpu, mem float64, now time.Time) {
	secs := now.Sub(p.last).Seconds()
	p.last = now
	p.cpu, p.mem = cpu, mem
	if secs <= 0 {
		return
	}
	p.busy += cpu * secs
	p.wall += secs
	p.recent[1], p.recent[0] = p.recent[0], reading{cpu, secs}
}

// mean is the CPU over the time since the last report, and the latest
// memory reading.
func (p *probes) mean() (cpu, mem float64) {
	cpu = p.cpu
	if p.wall > 0 {
		// Rounded to a millionth of a point: a steady reading stays exact.
		cpu = math.Round(p.busy/p.wall*1e6) / 1e6
	}
	return clampPercent(cpu), p.mem
}

// early reports whether the last two probes read a jump worth reporting
// now, and their reading.
func (p *probes) early() (cpu, mem float64, ok bool) {
	a, b := p.recent[0], p.recent[1]
	if a.secs == 0 || b.secs == 0 {
		return 0, 0, false
	}
	cpu = clampPercent((a.cpu*a.secs + b.cpu*b.secs) / (a.secs + b.secs))
	step := earlyJump
	if p.sentEarly {
		step = earlyClimb
	}
	return cpu, p.mem, cpu >= p.sentCPU+step || p.mem >= p.sentM+step
}

// reported starts a new report's span.
func (p *probes) reported(cpu, mem float64, early bool) {
	p.busy, p.wall = 0, 0
	p.sentCPU, p.sentM, p.sentEarly = cpu, mem, early
}

func (c *Client) buildReport() Report {
	cpu, mem := c.cfg.sampler.sample()
	return c.buildReportOf(cpu, mem)
}

func (c *Client) buildReportOf(cpu, mem float64) Report {
	at := c.cfg.clock.Now().UTC()
	r := Report{
		CPUPercent:    &cpu,
		MemoryPercent: &mem,
		Requests:      c.requests.Swap(0),
		Errors:        c.errs.Swap(0),
		At:            &at,
		Components:    c.componentStates(),
	}
	// Errors are counted just after requests; a report taken in between
	// must not claim more errors than requests.
	r.Errors = min(r.Errors, r.Requests)
	fitFrame(&r, c.log)
	return r
}

// fitFrame leaves components out of r, last names first, until its frame
// fits the controller's limit: 64 components of 32 metrics with long names
// can exceed it.
func fitFrame(r *Report, log *slog.Logger) {
	size := func() int {
		b, err := json.Marshal(wire.ReportFrame{Type: wire.TypeReport, Report: *r})
		if err != nil {
			return 0
		}
		return len(b)
	}
	n := size()
	if n <= wire.MaxClientFrame {
		return
	}
	names := slices.Sorted(maps.Keys(r.Components))
	r.Components = maps.Clone(r.Components)
	dropped := 0
	for n > wire.MaxClientFrame && len(names) > 0 {
		delete(r.Components, names[len(names)-1])
		names = names[:len(names)-1]
		dropped++
		n = size()
	}
	log.Warn("brownout: report too large; left components out", slog.Int("dropped", dropped))
}

// componentStates collects the registered components' states, within the
// controller's limits (component.MaxMetrics metrics each, by name order).
func (c *Client) componentStates() map[string]component.State {
	c.compMu.Lock()
	reg := maps.Clone(c.components)
	c.compMu.Unlock()
	if len(reg) == 0 {
		return nil
	}
	out := make(map[string]component.State, len(reg))
	for name, r := range reg {
		st, ok := c.componentState(name, r)
		if !ok {
			continue
		}
		out[name] = sanitizeComponent(st)
	}
	return out
}

// maxComponentText bounds a component's kind, state and metric names, as
// the controller does.
const maxComponentText = 64

// sanitizeComponent makes a component's state acceptable to the controller,
// which refuses a whole report for one bad component: kind and state cut to
// 64 bytes, metrics with empty or over-long names or non-finite values left
// out, and at most component.MaxMetrics metrics kept, by name order.
func sanitizeComponent(st component.State) component.State {
	st.Kind = truncate(st.Kind, maxComponentText)
	st.State = truncate(st.State, maxComponentText)
	if len(st.Metrics) == 0 {
		return st
	}
	m := make(map[string]float64, min(len(st.Metrics), component.MaxMetrics))
	for _, k := range slices.Sorted(maps.Keys(st.Metrics)) {
		v := st.Metrics[k]
		if k == "" || len(k) > maxComponentText || math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		if len(m) == component.MaxMetrics {
			break
		}
		m[k] = v
	}
	st.Metrics = m
	return st
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func (c *Client) componentState(name string, r component.Reporter) (st component.State, ok bool) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("brownout: component state panicked", slog.String("component", name), slog.Any(logKeyPanic, p))
			ok = false
		}
	}()
	return r.ComponentState(), true
}

// ring is a bounded FIFO of reports that drops the oldest when full.
type ring struct {
	mu      sync.Mutex
	buf     []Report
	head, n int
	dropped uint64
}

func newRing(size int) *ring { return &ring{buf: make([]Report, size)} }

func (r *ring) push(rep Report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == len(r.buf) {
		r.buf[r.head] = Report{}
		r.head = (r.head + 1) % len(r.buf)
		r.n--
		r.dropped++
	}
	r.buf[(r.head+r.n)%len(r.buf)] = rep
	r.n++
}

// peek returns the oldest report without removing it, so that a report
// whose write fails is sent again on the next connection.
func (r *ring) peek() (Report, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == 0 {
		return Report{}, false
	}
	return r.buf[r.head], true
}

// pop removes the oldest report. Only the connection's writer pops, so the
// report it removes is the one it peeked, unless push dropped it meanwhile,
// in which case pop removes one report more than was sent; the controller
// sees a gap either way.
func (r *ring) pop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == 0 {
		return
	}
	r.buf[r.head] = Report{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
}

func (r *ring) stats() (buffered int, dropped uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n, r.dropped
}

// sampler measures the process's CPU and memory.
type sampler interface {
	// sample returns CPU% since the previous call and memory%, both 0–100.
	sample() (cpu, mem float64)
}

func clampPercent(v float64) float64 { return min(max(v, 0), 100) }
