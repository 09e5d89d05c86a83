package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/brownout-io/brownout/sdk/wire"
)

// IngestResult is one sustained ingest measurement.
type IngestResult struct {
	Transport   string  `json:"transport"`
	Replicas    int     `json:"replicas"`
	Subscribers int     `json:"subscribers,omitempty"`
	Services    int     `json:"services"`
	Offered     int     `json:"offered_per_s,omitempty"`
	Seconds     float64 `json:"seconds"`
	Sent        int64   `json:"sent"`
	SendErrors  int64   `json:"send_errors"`
	// Accepted is the controller's own count (brownout_reports_ingested_total
	// delta, summed over every replica), Rejected its refusals.
	Accepted    float64 `json:"accepted"`
	Rejected    float64 `json:"rejected"`
	AcceptedPS  float64 `json:"accepted_per_s"`
	ErrorFrames int64   `json:"error_frames,omitempty"`
	// Persistence: samples written and dropped by the store while the
	// reports came in, and history points found afterwards.
	SamplesDropped  float64 `json:"samples_dropped"`
	SampleWrites    float64 `json:"sample_write_txs"`
	HistoryPoints   int     `json:"history_points"`
	HistoryExpected int     `json:"history_points_expected"`
	// HistoryMaxGapS is the longest time between two stored samples of one
	// service: the controller takes one per evaluation tick, so this is
	// also the longest its level evaluation stalled.
	HistoryMaxGapS float64  `json:"history_max_gap_seconds"`
	ToolCPUSeconds float64  `json:"load_tool_cpu_seconds"`
	CPUSeconds     float64  `json:"controller_cpu_seconds"`
	RSSKiB         int64    `json:"controller_rss_kib"`
	Errors         []string `json:"errors,omitempty"`
}

func runIngest(ctx context.Context, o *options, res *Results, log io.Writer) error {
	n := o.subs[0]
	t, err := openTarget(ctx, o, n, "ingest")
	if err != nil {
		return err
	}
	defer t.cleanup()
	var errs []error
	if o.reports > 0 && o.ingestFor > 0 {
		r := &IngestResult{Transport: "ws", Replicas: len(t.urls), Subscribers: n, Services: len(t.services), Offered: o.reports}
		res.Ingest = append(res.Ingest, r)
		if err := ingestWS(ctx, o, t, n, r, log); err != nil {
			r.Errors = append(r.Errors, err.Error())
			errs = append(errs, err)
		}
	}
	if o.httpFor > 0 {
		r := &IngestResult{Transport: "http", Replicas: len(t.urls), Services: len(t.services)}
		res.Ingest = append(res.Ingest, r)
		if err := ingestHTTP(ctx, o, t, r, log); err != nil {
			r.Errors = append(r.Errors, err.Error())
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// reportFrames are a few websocket report frames with signals well below
// every default threshold, so that ingest does not change levels.
func reportFrames() [][]byte {
	var out [][]byte
	for i := 0; i < 16; i++ {
		b, err := json.Marshal(wire.ReportFrame{Type: wire.TypeReport, Report: loadReport("", "", i)})
		if err != nil {
			panic(err) // plain values: cannot fail
		}
		out = append(out, b)
	}
	return out
}

// loadReport is report i of a sequence whose signals stay well below every
// default threshold.
func loadReport(service, instance string, i int) wire.Report {
	cpu, mem := float64(20+i%10)+0.5, float64(30+i%10)
	return wire.Report{
		Service: service, Instance: instance, CPUPercent: &cpu, MemoryPercent: &mem,
		Requests: int64(100 + i%7), Errors: int64(i % 2),
	}
}

func ingestWS(ctx context.Context, o *options, t *target, n int, r *IngestResult, log io.Writer) error {
	f := newFleet(t.wsBase(), t.services, t.tokens, n)
	f.raw = true
	if len(t.urls) > 1 {
		f.spread(t.wsBases()) // reporters on every replica
	}
	defer f.closeAll()
	o.logf(log, "ingest: connecting %d subscribers over %d replica(s)", n, len(t.urls))
	if failed, _ := f.connectAll(ctx, o.par); failed > 0 {
		return fmt.Errorf("%d of %d connections failed", failed, n)
	}
	if !f.waitConverged(ctx, 30*time.Second) {
		return fmt.Errorf("subscribers did not receive the first state: %s; the replicas hold %s", f.describe(), t.serviceVersions(ctx))
	}
	before, err := t.allMetrics(ctx)
	if err != nil {
		return err
	}
	from := time.Now().UTC()
	tool0 := toolCPU()
	o.logf(log, "ingest: offering %d reports/s over websockets for %s", o.reports, o.ingestFor)
	stopProfile, err := startCPUProfile(o.cpuProfile)
	if err != nil {
		return err
	}
	sent, failed, took := f.pump(ctx, o.reports, o.ingestFor)
	stopProfile()
	to := time.Now().UTC()
	time.Sleep(2 * time.Second) // one flush interval and a tick
	after, err := t.allMetrics(ctx)
	if err != nil {
		return err
	}
	r.Seconds, r.Sent, r.SendErrors, r.ErrorFrames = took.Seconds(), sent, failed, f.errFrames.Load()
	fillIngest(r, before, after, "ws")
	r.AcceptedPS = r.Accepted / took.Seconds()
	r.RSSKiB = t.rss()
	r.ToolCPUSeconds = toolCPU() - tool0
	r.HistoryPoints, r.HistoryExpected, r.HistoryMaxGapS, err = historyPoints(ctx, t, from, to)
	o.logf(log, "ingest: ws sent %d in %.1fs; controller accepted %.0f (%.0f/s), rejected %.0f; history %d/%d points; dropped samples %.0f",
		sent, took.Seconds(), r.Accepted, r.AcceptedPS, r.Rejected, r.HistoryPoints, r.HistoryExpected, r.SamplesDropped)
	return err
}

func fillIngest(r *IngestResult, before, after map[string]float64, transport string) {
	d := func(k string) float64 { return after[k] - before[k] }
	r.Accepted = d(`brownout_reports_ingested_total{transport="` + transport + `"}`)
	for k := range after {
		if bytes.HasPrefix([]byte(k), []byte(`brownout_reports_rejected_total{`)) && bytes.Contains([]byte(k), []byte(`transport="`+transport+`"`)) {
			r.Rejected += d(k)
		}
	}
	r.SamplesDropped = d("brownout_samples_dropped_total")
	r.SampleWrites = d(`brownout_store_write_seconds_count{op="write_samples"}`)
	r.CPUSeconds = d("process_cpu_seconds_total")
}

// historyPoints counts the per-second sample points stored for every
// service over [from, to) (the reports reached the store), and the longest
// gap between two of them.
func historyPoints(ctx context.Context, t *target, from, to time.Time) (got, want int, maxGap float64, err error) {
	from = from.Add(2 * time.Second).Truncate(time.Second)
	to = to.Add(-time.Second).Truncate(time.Second)
	if !to.After(from) {
		return 0, 0, 0, nil
	}
	for _, s := range t.services {
		var out struct {
			Items []struct {
				At time.Time `json:"at"`
			} `json:"items"`
		}
		q := url.Values{"service": {s}, "from": {from.Format(time.RFC3339Nano)}, "to": {to.Format(time.RFC3339Nano)}, "step": {"1s"}}
		if _, err := t.api.do(ctx, http.MethodGet, "/api/v1/history/samples?"+q.Encode(), nil, &out); err != nil {
			return got, want, maxGap, err
		}
		got += len(out.Items)
		want += int(to.Sub(from) / time.Second)
		prev := from
		for _, it := range append(out.Items, struct {
			At time.Time `json:"at"`
		}{At: to}) {
			maxGap = max(maxGap, it.At.Sub(prev).Seconds())
			prev = it.At
		}
	}
	return got, want, maxGap, nil
}

// startCPUProfile writes this process's CPU profile to path until the
// returned function is called; an empty path profiles nothing.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// toolCPU is the CPU time this process has used, in seconds.
func toolCPU() float64 {
	s, _ := cpuSeconds(os.Getpid())
	return s
}

// pump sends rate reports per second, spread round-robin over the
// connected subscribers, for d; it returns what was sent and how long it
// took. Senders catch up after a stall but never send ahead of schedule.
func (f *fleet) pump(ctx context.Context, rate int, d time.Duration) (sent, failed int64, took time.Duration) {
	const workers = 8
	frames := reportFrames()
	masked := maskedFrames(frames)
	var nSent, nFailed atomic.Int64
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			perSecond := float64(rate) / workers
			var mine []*subscriber
			for i := w; i < len(f.subs); i += workers {
				mine = append(mine, f.subs[i])
			}
			if len(mine) == 0 {
				return
			}
			var done int64
			next := 0
			for ctx.Err() == nil {
				due := int64(time.Since(start).Seconds() * perSecond)
				if done >= due {
					time.Sleep(time.Millisecond)
					continue
				}
				for ; done < due && ctx.Err() == nil; done++ {
					s := mine[next%len(mine)]
					next++
					c := s.conn.Load()
					if c == nil {
						nFailed.Add(1)
						continue
					}
					var err error
					if rc := s.raw.Load(); rc != nil && rc.ws == c {
						err = rc.write(masked[next%len(masked)])
					} else {
						// Not tied to the run's deadline: a write cancelled
						// half-way would close the connection.
						wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
						err = c.Write(wctx, websocket.MessageText, frames[next%len(frames)])
						wcancel()
					}
					if err != nil {
						if ctx.Err() == nil {
							nFailed.Add(1)
						}
						continue
					}
					nSent.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	took = time.Since(start)
	for _, s := range f.subs {
		if rc := s.raw.Load(); rc != nil {
			_ = rc.sock.SetWriteDeadline(time.Time{}) // acks after the run have no deadline either
		}
	}
	return nSent.Load(), nFailed.Load(), took
}

// rawConn is a subscriber's socket under its websocket connection. A
// whole frame written in one Write never interleaves with the frames the
// websocket library writes (acks, pongs): the socket serialises writes.
// That lets pump send pre-encoded frames without the library's per-write
// locks, timers and copies, so that the sender's CPU per report is mostly
// the write system call.
type rawConn struct {
	ws       *websocket.Conn
	sock     net.Conn
	deadline time.Time // the write deadline last set; one pump worker writes to a socket
}

// write sends one complete, masked frame, with a write deadline at least
// 4 s ahead (moved once a second, not on every write).
func (rc *rawConn) write(frame []byte) error {
	if now := time.Now(); rc.deadline.Sub(now) < 4*time.Second {
		rc.deadline = now.Add(5 * time.Second)
		if err := rc.sock.SetWriteDeadline(rc.deadline); err != nil {
			return err
		}
	}
	_, err := rc.sock.Write(frame)
	return err
}

// maskedFrames encodes each payload as a client's text frame (RFC 6455
// section 5.2: FIN, opcode 1, masked) under several random mask keys.
func maskedFrames(payloads [][]byte) [][]byte {
	const keys = 16
	var out [][]byte
	for k := 0; k < keys; k++ {
		var key [4]byte
		_, _ = crand.Read(key[:])
		for _, p := range payloads {
			b := []byte{0x81}
			switch n := len(p); {
			case n < 126:
				b = append(b, 0x80|byte(n))
			case n <= 0xffff:
				b = append(b, 0x80|126, byte(n>>8), byte(n))
			default:
				b = append(b, 0x80|127)
				b = binary.BigEndian.AppendUint64(b, uint64(n))
			}
			b = append(b, key[:]...)
			for i, c := range p {
				b = append(b, c^key[i%4])
			}
			out = append(out, b)
		}
	}
	return out
}

func ingestHTTP(ctx context.Context, o *options, t *target, r *IngestResult, log io.Writer) error {
	bodies := make([][]byte, len(t.services))
	for i, s := range t.services {
		batch := make([]wire.Report, o.httpBatch)
		for j := range batch {
			batch[j] = loadReport(s, fmt.Sprintf("h-%d", j%50), j)
		}
		b, err := json.Marshal(batch)
		if err != nil {
			return err
		}
		bodies[i] = b
	}
	before, err := t.allMetrics(ctx)
	if err != nil {
		return err
	}
	o.logf(log, "ingest: HTTP batches of %d with %d senders for %s", o.httpBatch, o.httpWorkers, o.httpFor)
	from := time.Now().UTC()
	tool0 := toolCPU()
	hctx, cancel := context.WithTimeout(ctx, o.httpFor)
	defer cancel()
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.httpWorkers}}
	for w := 0; w < o.httpWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; hctx.Err() == nil; k += o.httpWorkers {
				u := t.urls[w%len(t.urls)] // senders spread over the replicas
				req, _ := http.NewRequestWithContext(hctx, http.MethodPost, u+wire.ReportsPath, bytes.NewReader(bodies[k%len(bodies)]))
				req.Header.Set("Authorization", "Bearer "+t.token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					if hctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					failed.Add(1)
					continue
				}
				sent.Add(int64(o.httpBatch))
			}
		}()
	}
	wg.Wait()
	took := time.Since(from)
	to := time.Now().UTC()
	time.Sleep(2 * time.Second)
	after, err := t.allMetrics(ctx)
	if err != nil {
		return err
	}
	r.Seconds, r.Sent, r.SendErrors = took.Seconds(), sent.Load(), failed.Load()
	fillIngest(r, before, after, "http")
	r.AcceptedPS = r.Accepted / took.Seconds()
	r.RSSKiB = t.rss()
	r.ToolCPUSeconds = toolCPU() - tool0
	r.HistoryPoints, r.HistoryExpected, r.HistoryMaxGapS, err = historyPoints(ctx, t, from, to)
	o.logf(log, "ingest: http accepted %.0f (%.0f/s) in batches of %s; history %d/%d points",
		r.Accepted, r.AcceptedPS, strconv.Itoa(o.httpBatch), r.HistoryPoints, r.HistoryExpected)
	return err
}
