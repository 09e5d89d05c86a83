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

// runReporter builds a report every interval and queues it for the
// connection; the ring keeps the newest while disconnected.
func (c *Client) runReporter() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.reportInterval)
	defer t.Stop()
	// Prime the CPU sampler so that the first report covers one interval.
	c.cfg.sampler.sample()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		if c.Err() != nil {
			return // never again connected: nothing to report to
		}
		c.ring.push(c.buildReport())
		select {
		case c.reportReady <- struct{}{}:
		default:
		}
	}
}

func (c *Client) buildReport() Report {
	cpu, mem := c.cfg.sampler.sample()
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
