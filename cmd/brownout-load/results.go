package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Results is everything one run measured; it is written as JSON with
// --json.
type Results struct {
	Mode        string          `json:"mode"`
	Machine     Machine         `json:"machine"`
	StartedAt   time.Time       `json:"started_at"`
	FinishedAt  time.Time       `json:"finished_at"`
	Propagation []*PropResult   `json:"propagation,omitempty"`
	Ingest      []*IngestResult `json:"ingest,omitempty"`
	Storm       *StormResult    `json:"storm,omitempty"`
	Soak        *SoakResult     `json:"soak,omitempty"`
	Failover    *FailoverResult `json:"failover,omitempty"`
}

// Machine describes where the numbers were taken.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemoryKiB int64  `json:"memory_kib"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel"`
}

func describeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "model name") {
				if i := strings.IndexByte(line, ':'); i >= 0 {
					m.CPUModel = strings.TrimSpace(line[i+1:])
				}
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kib int64
		if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kib); err == nil {
			m.MemoryKiB = kib
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	return m
}

func (r *Results) writeJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func (r *Results) printTable(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "\nmachine: %d CPUs (%s), %.1f GiB, %s, kernel %s\n", m.CPUs, m.CPUModel, float64(m.MemoryKiB)/(1<<20), m.GoVersion, m.Kernel)
	if len(r.Propagation) > 0 {
		fmt.Fprintln(w, "\npropagation (override call → last subscriber received+acked; floor = bare broadcaster, same client code)")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "subs\tsvcs\tchanges\tfloor p50\tfloor p99\tours p50\tours p99\tours max\tp50 ratio\tp99 ratio\tAPI p50\tKiB/sub\tstack KiB/sub\theap KiB/sub\tgor/sub\tfloor KiB/sub\t")
		for _, p := range r.Propagation {
			fl := p.Floor
			if fl == nil {
				fl = &Latency{}
			}
			ou := p.Ours
			if ou == nil {
				ou = &Latency{}
			}
			fmt.Fprintf(tw, "%d\t%d\t%d\t%.1f ms\t%.1f ms\t%.1f ms\t%.1f ms\t%.1f ms\t%.2f×\t%.2f×\t%.1f ms\t%.1f\t%.1f\t%.1f\t%.2f\t%.1f\t\n",
				p.Subscribers, p.Services, ou.N, fl.P50Ms, fl.P99Ms, ou.P50Ms, ou.P99Ms, ou.MaxMs, p.RatioP50, p.RatioP99, p.APICallP50Ms,
				p.RSSPerSubKiB, p.StackPerSubKiB, p.HeapPerSubKiB, p.GoroutinesPer, p.FloorRSSPerSub)
		}
		tw.Flush()
		for _, p := range r.Propagation {
			fmt.Fprintf(w, "  %d subscribers: server CPU per subscriber per change: floor %.1f µs, ours %.1f µs; per-subscriber apply p50 %.1f ms, p99 %.1f ms\n",
				p.Subscribers, p.FloorCPUPerSubChangeUs, p.OursCPUPerSubChangeUs, p.PerSubP50Ms, p.PerSubP99Ms)
		}
		for _, p := range r.Propagation {
			for _, e := range p.Errors {
				fmt.Fprintf(w, "  error at %d: %s\n", p.Subscribers, e)
			}
		}
	}
	if len(r.Ingest) > 0 {
		fmt.Fprintln(w, "\ningest (accepted = controller's brownout_reports_ingested_total; history = stored 1 s sample points)")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "transport\treplicas\tsubs\toffered/s\tseconds\tsent\taccepted\taccepted/s\trejected\tsamples dropped\thistory\tmax gap\tctl CPU s\ttool CPU s\tctl RSS MiB\t")
		for _, i := range r.Ingest {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%d/%d\t%.1f s\t%.1f\t%.1f\t%.0f\t\n",
				i.Transport, max(1, i.Replicas), i.Subscribers, i.Offered, i.Seconds, i.Sent, i.Accepted, i.AcceptedPS, i.Rejected, i.SamplesDropped,
				i.HistoryPoints, i.HistoryExpected, i.HistoryMaxGapS, i.CPUSeconds, i.ToolCPUSeconds, float64(i.RSSKiB)/1024)
		}
		tw.Flush()
		for _, i := range r.Ingest {
			for _, e := range i.Errors {
				fmt.Fprintf(w, "  error (%s): %s\n", i.Transport, e)
			}
		}
	}
	if f := r.Failover; f != nil {
		fmt.Fprintf(w, "\nfailover (%d replicas, lease %s, %d subscribers; SIGKILL of the leader, min/median/max)\n", f.Replicas, f.LeaseTTL, f.Subscribers)
		fmt.Fprintf(w, "  kills %d; first subscriber moved %s ms; every survivor's subscriber moved %s ms; new leader named %s ms\n",
			f.FirstMove.orZero().N, spreadText(f.FirstMove.orZero()), spreadText(f.AllMoved.orZero()), spreadText(f.Named.orZero()))
		fmt.Fprintf(w, "  writes on the survivors: %d acknowledged, %d failed; after every replica was killed: %d acknowledged writes lost, %d frames went back, %d services behind their subscribers\n",
			f.WritesAcked, f.WritesFailed, f.LostWrites, f.VersionsBack, f.StaleServices)
		for _, e := range f.Errors {
			fmt.Fprintf(w, "  error: %s\n", e)
		}
	}
	if s := r.Storm; s != nil {
		fmt.Fprintln(w, "\nreconnect storm (SIGKILL with all connected, restart on same address and data)")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "subs\trestart\tall back (from kill)\tfrom restart\tback\tpeak attempts/100ms\tpeak connects/100ms\tattempts\tversions back\t")
		fmt.Fprintf(tw, "%d\t%.2f s\t%.2f s\t%.2f s\t%d\t%d\t%d\t%d\t%d\t\n", s.Subscribers, s.RestartSeconds, s.AllBackSeconds,
			s.FromRestartSeconds, s.Back, s.PeakAttemptsPer100ms, s.PeakConnectsPer100ms, s.Attempts, s.VersionsWentBack)
		tw.Flush()
		fmt.Fprintf(w, "  clients: %s\n", s.Backoff)
		for _, e := range s.Errors {
			fmt.Fprintf(w, "  error: %s\n", e)
		}
	}
	if s := r.Soak; s != nil {
		fmt.Fprintf(w, "\nsoak: %d subscribers, %d reports/s offered, %.0f s, %d override changes; accepted %.0f, rejected %.0f\n",
			s.Subscribers, s.Reports, s.Seconds, s.Changes, s.Accepted, s.Rejected)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "t (s)\tRSS MiB\theap MiB\tgoroutines\tconnected\t")
		for _, x := range s.Samples {
			fmt.Fprintf(tw, "%.0f\t%.1f\t%.1f\t%.0f\t%d\t\n", x.At, float64(x.RSSKiB)/1024, x.HeapKiB/1024, x.Goroutines, x.Connected)
		}
		tw.Flush()
		fmt.Fprintf(w, "  RSS flat: %v, goroutines flat: %v, controller ERROR lines: %d → %s\n", s.RSSFlat, s.GorFlat, len(s.ErrorLines), s.Verdict)
		for i, l := range s.ErrorLines {
			if i == 10 {
				fmt.Fprintf(w, "  … %d more\n", len(s.ErrorLines)-10)
				break
			}
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}
