package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// changeTimeout bounds the wait for one change to reach every subscriber.
const changeTimeout = 30 * time.Second

// PropResult is one propagation measurement at one subscriber count.
type PropResult struct {
	Subscribers int    `json:"subscribers"`
	Services    int    `json:"services"`
	Scope       string `json:"scope"`
	FloorMode   string `json:"floor_mode,omitempty"`
	Changes     int    `json:"changes"`
	Rounds      int    `json:"rounds"`
	// Floor and Ours: time from the call that makes a change until the
	// last affected subscriber has received and acked it.
	Floor *Latency `json:"floor,omitempty"`
	Ours  *Latency `json:"ours"`
	// Replicas is how many controller replicas shared the subscribers;
	// with more than one, each change is made on one of them (A: a
	// follower, or the leader; ChangeOn says which) and Cross is the time
	// to the last subscriber on the other replicas (B).
	Replicas int      `json:"replicas"`
	ChangeOn string   `json:"change_on,omitempty"`
	Cross    *Latency `json:"cross_replica,omitempty"`
	// RatioP50 and RatioP99 are ours ÷ floor.
	RatioP50 float64 `json:"ratio_p50,omitempty"`
	RatioP99 float64 `json:"ratio_p99,omitempty"`
	// APICall is how long the override call itself took (p50, p99).
	APICallP50Ms float64 `json:"api_call_p50_ms"`
	APICallP99Ms float64 `json:"api_call_p99_ms"`
	// Per-subscriber apply latency over all changes.
	PerSubP50Ms float64 `json:"per_subscriber_p50_ms"`
	PerSubP99Ms float64 `json:"per_subscriber_p99_ms"`

	ConnectSeconds float64 `json:"connect_seconds"`
	RSSBeforeKiB   int64   `json:"rss_before_kib"`
	RSSAfterKiB    int64   `json:"rss_after_kib"`
	RSSPerSubKiB   float64 `json:"rss_per_subscriber_kib"`
	GoroutinesPer  float64 `json:"goroutines_per_subscriber"`
	// StackPerSubKiB and HeapPerSubKiB split the growth by the Go runtime's
	// own accounting (go_memstats_stack_inuse_bytes, heap_inuse_bytes).
	StackPerSubKiB float64 `json:"stack_per_subscriber_kib"`
	HeapPerSubKiB  float64 `json:"heap_inuse_per_subscriber_kib"`
	FloorRSSPerSub float64 `json:"floor_rss_per_subscriber_kib,omitempty"`
	// CPU time of the server process per subscriber per change, in µs:
	// less sensitive to other load on the machine than latency.
	FloorCPUPerSubChangeUs float64 `json:"floor_cpu_us_per_subscriber_change,omitempty"`
	OursCPUPerSubChangeUs  float64 `json:"cpu_us_per_subscriber_change"`
	floorCPU, oursCPU      float64
	floorUnits, oursUnits  int
	Errors                 []string `json:"errors,omitempty"`
}

// Latency is a distribution in milliseconds.
type Latency struct {
	N     int     `json:"n"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

func latencyOf(ds []time.Duration) *Latency {
	if len(ds) == 0 {
		return &Latency{}
	}
	return &Latency{N: len(ds), P50Ms: ms(pct(ds, 50)), P99Ms: ms(pct(ds, 99)), MaxMs: ms(pct(ds, 100))}
}

// pct is the nearest-rank percentile.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := int(p/100*float64(len(s))+0.999999) - 1
	k = max(0, min(k, len(s)-1))
	return s[k]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func runProp(ctx context.Context, o *options, res *Results, log io.Writer) error {
	var errs []error
	perRound := (o.changes + o.rounds - 1) / o.rounds
	for _, n := range o.subs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r := &PropResult{Subscribers: n, Services: o.services, Scope: o.scope, FloorMode: o.floorMode, Changes: perRound * o.rounds, Rounds: o.rounds, Replicas: o.replicas}
		if o.replicas > 1 {
			r.ChangeOn = o.changeOn
		}
		res.Propagation = append(res.Propagation, r)
		// Floor and controller alternate in rounds, so that a change in the
		// machine's load during the run hits both alike.
		var floor, ours, each, calls, cross []time.Duration
		for round := 1; round <= o.rounds && ctx.Err() == nil; round++ {
			if o.baseline {
				lasts, err := measureFloor(ctx, o, n, perRound, r, log)
				floor = append(floor, lasts...)
				if err != nil {
					r.Errors = append(r.Errors, "floor: "+err.Error())
					errs = append(errs, fmt.Errorf("floor at %d: %w", n, err))
				}
			}
			m, err := measureOurs(ctx, o, n, perRound, r, log)
			ours, each, calls = append(ours, m.lasts...), append(each, m.each...), append(calls, m.calls...)
			cross = append(cross, m.cross...)
			if err != nil {
				r.Errors = append(r.Errors, err.Error())
				errs = append(errs, fmt.Errorf("controller at %d: %w", n, err))
			}
		}
		if o.baseline {
			r.Floor = latencyOf(floor)
		}
		r.Ours = latencyOf(ours)
		if o.replicas > 1 {
			r.Cross = latencyOf(cross)
		}
		r.APICallP50Ms, r.APICallP99Ms = ms(pct(calls, 50)), ms(pct(calls, 99))
		r.PerSubP50Ms, r.PerSubP99Ms = ms(pct(each, 50)), ms(pct(each, 99))
		if r.Floor != nil && r.Floor.P99Ms > 0 && r.Ours.N > 0 {
			r.RatioP50 = r.Ours.P50Ms / r.Floor.P50Ms
			r.RatioP99 = r.Ours.P99Ms / r.Floor.P99Ms
		}
		o.logf(log, "%d subscribers over %d replicas: floor p50 %.1f p99 %.1f ms; ours p50 %.1f p99 %.1f ms; ratio p50 %.2f p99 %.2f; A→B p99 %.1f ms",
			n, o.replicas, r.Floor.orZero().P50Ms, r.Floor.orZero().P99Ms, r.Ours.P50Ms, r.Ours.P99Ms, r.RatioP50, r.RatioP99, r.Cross.orZero().P99Ms)
	}
	return errors.Join(errs...)
}

func (l *Latency) orZero() *Latency {
	if l == nil {
		return &Latency{}
	}
	return l
}

// measureFloor runs the bare broadcaster and measures it with the same
// client code. Past perProcessSubs subscribers (more sockets than one
// process may hold) it runs as few broadcaster processes as hold them, and
// each change is one broadcast to all of them at once.
func measureFloor(ctx context.Context, o *options, n, changes int, r *PropResult, log io.Writer) ([]time.Duration, error) {
	var bases []string
	var pids []int
	if o.baselineURL != "" {
		bases = []string{o.baselineURL}
	} else {
		for range (n + perProcessSubs - 1) / perProcessSubs {
			b, err := startBaseline(o.floorMode)
			if err != nil {
				return nil, err
			}
			defer b.stop()
			bases, pids = append(bases, "http://"+b.addr), append(pids, b.pid)
		}
	}
	services := make([]string, o.services)
	for i := range services {
		services[i] = fmt.Sprintf("load-%03d", i)
	}
	var rss0 int64
	for _, pid := range pids {
		v, _ := rssKiB(pid)
		rss0 += v
	}
	ws := make([]string, len(bases))
	for i, b := range bases {
		ws[i] = "ws" + strings.TrimPrefix(b, "http")
	}
	f, err := newSubscriberSet(ws, services, nil, n, o.clientProcs(n))
	if err != nil {
		return nil, err
	}
	defer f.closeAll()
	o.logf(log, "floor: connecting %d subscribers to %d broadcaster process(es)", n, len(bases))
	if failed, took := f.connectAll(ctx, o.par); failed > 0 {
		return nil, fmt.Errorf("%d of %d connections failed (in %s)", failed, n, took)
	}
	if !waitVersions(ctx, f, 30*time.Second) {
		return nil, errors.New("subscribers did not receive the first frame")
	}
	if len(pids) > 0 {
		time.Sleep(o.settle)
		var rss1 int64
		for _, pid := range pids {
			v, _ := rssKiB(pid)
			rss1 += v
		}
		r.FloorRSSPerSub = float64(rss1-rss0) / float64(n)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	all := make([]bool, len(services))
	for i := range all {
		all[i] = true
	}
	broadcast := func() error {
		errs := make([]error, len(bases))
		var wg sync.WaitGroup
		for i, b := range bases {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := hc.Post(b+"/broadcast", "text/plain", nil)
				if err != nil {
					errs[i] = err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	var lasts []time.Duration
	cpu0 := cpuOf(pids)
	for k := 1; k <= changes && ctx.Err() == nil; k++ {
		if !waitVersions(ctx, f, 10*time.Second) {
			return lasts, errors.New("subscribers did not converge between changes")
		}
		_, vs := f.versions()
		if err := f.arm(int64(k), all, vs); err != nil {
			return lasts, err
		}
		t0 := time.Now()
		if err := broadcast(); err != nil {
			f.disarm()
			return lasts, err
		}
		c, err := f.await(ctx, int64(k), t0, changeTimeout, -1)
		if err != nil {
			return lasts, err
		}
		lasts = append(lasts, c.last)
		pause(ctx, k)
	}
	if cpu1 := cpuOf(pids); len(pids) > 0 && len(lasts) > 0 {
		r.floorCPU, r.floorUnits = r.floorCPU+cpu1-cpu0, r.floorUnits+len(lasts)*n
		r.FloorCPUPerSubChangeUs = r.floorCPU * 1e6 / float64(r.floorUnits)
	}
	l := latencyOf(lasts)
	o.logf(log, "floor: %d subscribers: p50 %.1f ms p99 %.1f ms max %.1f ms", n, l.P50Ms, l.P99Ms, l.MaxMs)
	return lasts, nil
}

// cpuOf is the CPU time the processes have used so far, in seconds.
func cpuOf(pids []int) float64 {
	var s float64
	for _, pid := range pids {
		v, _ := cpuSeconds(pid)
		s += v
	}
	return s
}

// pause spaces changes a little, with variation, so that they do not line
// up with the controller's evaluation tick.
func pause(ctx context.Context, k int) {
	d := time.Duration(20+(k*37)%60) * time.Millisecond
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

type oursRound struct{ lasts, each, calls, cross []time.Duration }

func measureOurs(ctx context.Context, o *options, n, changes int, r *PropResult, log io.Writer) (m oursRound, err error) {
	t, err := openTarget(ctx, o, n, fmt.Sprintf("prop-%d", n))
	if err != nil {
		return m, err
	}
	defer t.cleanup()
	rss0, g0, err := t.settleSample(ctx, time.Second)
	if err != nil {
		return m, err
	}
	m0, _ := t.api.metrics(ctx)
	f, err := newSubscriberSet(t.wsBases(), t.services, t.tokens, n, o.clientProcs(n))
	if err != nil {
		return m, err
	}
	defer f.closeAll()
	onFrom := n
	if len(t.urls) > 1 {
		onFrom = (n + len(t.urls) - 1 - t.from) / len(t.urls)
	}
	o.logf(log, "controller: connecting %d subscribers over %d services and %d replicas", n, len(t.services), len(t.urls))
	failed, took := f.connectAll(ctx, o.par)
	r.ConnectSeconds = took.Seconds()
	if failed > 0 {
		t.logTail(log)
		return m, fmt.Errorf("%d of %d connections failed", failed, n)
	}
	if !waitVersions(ctx, f, 30*time.Second) {
		return m, fmt.Errorf("subscribers did not receive the first state: %s; the replicas hold %s", f.describe(), t.serviceVersions(ctx))
	}
	rss1, g1, err := t.settleSample(ctx, o.settle)
	if err != nil {
		return m, err
	}
	if m1, err := t.api.metrics(ctx); err == nil && m0 != nil {
		r.StackPerSubKiB = (m1["go_memstats_stack_inuse_bytes"] - m0["go_memstats_stack_inuse_bytes"]) / 1024 / float64(onFrom)
		r.HeapPerSubKiB = (m1["go_memstats_heap_inuse_bytes"] - m0["go_memstats_heap_inuse_bytes"]) / 1024 / float64(onFrom)
	}
	r.RSSBeforeKiB, r.RSSAfterKiB = rss0, rss1
	if t.pid > 0 {
		r.RSSPerSubKiB = float64(rss1-rss0) / float64(onFrom)
	}
	r.GoroutinesPer = (g1 - g0) / float64(onFrom)
	o.logf(log, "controller: %d connected in %s; RSS %d → %d KiB (%.1f KiB/sub); goroutines %.0f → %.0f",
		n, took.Round(time.Millisecond), rss0, rss1, r.RSSPerSubKiB, g0, g1)

	affected := make([]bool, len(t.services))
	scope := "*"
	for i := range affected {
		affected[i] = o.scope == "all" || i == 0
	}
	if o.scope == "one" {
		scope = t.services[0]
	}
	overrideID := ""
	cpu0, _ := cpuSeconds(t.pid)
	for k := 1; k <= changes && ctx.Err() == nil; k++ {
		if !waitVersions(ctx, f, 10*time.Second) {
			return m, fmt.Errorf("subscribers did not converge between changes: %s; the replicas hold %s", f.describe(), t.serviceVersions(ctx))
		}
		_, vs := f.versions()
		if err := f.arm(int64(k), affected, vs); err != nil {
			return m, err
		}
		t0 := time.Now()
		if overrideID == "" {
			var ov struct {
				ID string `json:"id"`
			}
			body := map[string]any{"service": scope, "level": 1 + (k/2)%3, "reason": "load test change " + fmt.Sprint(k)}
			_, err = t.api.do(ctx, http.MethodPost, "/api/v1/overrides", body, &ov)
			overrideID = ov.ID
		} else {
			_, err = t.api.do(ctx, http.MethodDelete, "/api/v1/overrides/"+overrideID, nil, nil)
			overrideID = ""
		}
		m.calls = append(m.calls, time.Since(t0))
		if err != nil {
			f.disarm()
			return m, err
		}
		from := -1
		if len(t.urls) > 1 {
			from = t.from
		}
		c, err := f.await(ctx, int64(k), t0, changeTimeout, from)
		if err != nil {
			return m, err
		}
		m.lasts = append(m.lasts, c.last)
		m.each = append(m.each, c.each...)
		if c.crossOK {
			m.cross = append(m.cross, c.cross)
		}
		pause(ctx, k)
	}
	if cpu1, err := cpuSeconds(t.pid); err == nil && t.pid > 0 && len(m.lasts) > 0 {
		r.oursCPU, r.oursUnits = r.oursCPU+cpu1-cpu0, r.oursUnits+len(m.lasts)*onFrom
		r.OursCPUPerSubChangeUs = r.oursCPU * 1e6 / float64(r.oursUnits)
	}
	l := latencyOf(m.lasts)
	o.logf(log, "controller: %d subscribers: p50 %.1f ms p99 %.1f ms max %.1f ms (API call p50 %.1f ms); CPU %.1f µs per subscriber per change",
		n, l.P50Ms, l.P99Ms, l.MaxMs, ms(pct(m.calls, 50)), r.OursCPUPerSubChangeUs)
	if n := f.errFrameCount(); n > 0 {
		return m, fmt.Errorf("%d frames were not state frames", n)
	}
	return m, nil
}
