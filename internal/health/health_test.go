package health

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func f(v float64) *float64 { return &v }

func rep(inst string, cpu, mem float64, req, errs int64) Report {
	return Report{Service: "checkout", Instance: inst, CPUPercent: f(cpu), MemoryPercent: f(mem), Requests: req, Errors: errs}
}

func TestErrorRateIsRequestWeighted(t *testing.T) {
	w := NewWindow(30*time.Second, 30*time.Second)
	// A busy instance with 1% errors and a quiet one with 50%: the mean of
	// rates would be 25.5%; weighted by requests it is (10+5)/(1000+10).
	w.Add(rep("a", 40, 50, 1000, 10), t0)
	w.Add(rep("b", 60, 70, 10, 5), t0)
	s, live := w.Signals(t0)
	if live != 2 {
		t.Fatalf("live: got %d, want 2", live)
	}
	if got, want := s.ErrorRate, 15.0/1010; math.Abs(got-want) > 1e-12 {
		t.Fatalf("error rate: got %v, want %v", got, want)
	}
	if s.CPUPercent != 50 || s.MemoryPercent != 60 {
		t.Fatalf("means: got cpu %v mem %v, want 50 60", s.CPUPercent, s.MemoryPercent)
	}
}

func TestWindowSlidesAndStaleInstancesLeave(t *testing.T) {
	w := NewWindow(30*time.Second, 20*time.Second)
	w.Add(rep("a", 90, 50, 100, 50), t0)
	w.Add(rep("a", 10, 50, 100, 0), t0.Add(20*time.Second))
	w.Add(rep("b", 30, 50, 0, 0), t0)
	s, live := w.Signals(t0.Add(25 * time.Second))
	// b is silent for 25 s > 20 s: stale, left out. a has both samples.
	if live != 1 || s.CPUPercent != 50 || s.ErrorRate != 0.25 {
		t.Fatalf("at +25s: live %d signals %+v", live, s)
	}
	// At +35 s a's first sample has left the 30 s window.
	s, live = w.Signals(t0.Add(35 * time.Second))
	if live != 1 || s.CPUPercent != 10 || s.ErrorRate != 0 {
		t.Fatalf("at +35s: live %d signals %+v", live, s)
	}
	s, live = w.Signals(t0.Add(time.Minute))
	if live != 0 || s.CPUPercent != 0 || s.ErrorRate != 0 {
		t.Fatalf("at +60s: live %d signals %+v", live, s)
	}
}

func TestErrorRateOnlyReports(t *testing.T) {
	w := NewWindow(0, 0)
	r := Report{Service: "s", Instance: "a", CPUPercent: f(1), MemoryPercent: f(1), ErrorRate: f(0.2)}
	w.Add(r, t0)
	r.ErrorRate = f(0.4)
	w.Add(r, t0.Add(time.Second))
	s, _ := w.Signals(t0.Add(time.Second))
	if math.Abs(s.ErrorRate-0.3) > 1e-12 {
		t.Fatalf("got %v, want 0.3", s.ErrorRate)
	}
}

func TestWindowBoundedPerInstance(t *testing.T) {
	w := NewWindow(time.Hour, time.Hour)
	for i := 0; i < MaxSamplesPerInstance*3; i++ {
		w.Add(rep("a", 1, 1, 1, 0), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if n := len(w.instances["a"].samples); n != MaxSamplesPerInstance {
		t.Fatalf("samples kept: %d, want %d", n, MaxSamplesPerInstance)
	}
}

func TestForget(t *testing.T) {
	w := NewWindow(0, 0)
	w.Add(rep("old", 1, 1, 0, 0), t0)
	w.Add(rep("new", 1, 1, 0, 0), t0.Add(time.Hour))
	gone := w.Forget(t0.Add(time.Minute))
	if len(gone) != 1 || gone[0] != "old" || w.Len() != 1 {
		t.Fatalf("forgot %v, left %d", gone, w.Len())
	}
}

func TestValidate(t *testing.T) {
	future := t0.Add(6 * time.Minute)
	past := t0.Add(-25 * time.Hour)
	ok := t0.Add(4 * time.Minute)
	tests := []struct {
		name  string
		mut   func(*Report)
		code  string
		field string
	}{
		{"valid", func(r *Report) {}, "", ""},
		{"valid with at", func(r *Report) { r.At = &ok }, "", ""},
		{"bad service", func(r *Report) { r.Service = "Checkout" }, brownout.EBADREQUEST, "service"},
		{"empty instance", func(r *Report) { r.Instance = "" }, brownout.EBADREQUEST, "instance"},
		{"long name", func(r *Report) { r.Instance = strings.Repeat("a", 65) }, brownout.EBADREQUEST, "instance"},
		{"leading dash", func(r *Report) { r.Service = "-x" }, brownout.EBADREQUEST, "service"},
		{"cpu missing", func(r *Report) { r.CPUPercent = nil }, brownout.EINVALID, "cpu_percent"},
		{"cpu over 100", func(r *Report) { r.CPUPercent = f(100.1) }, brownout.EINVALID, "cpu_percent"},
		{"memory negative", func(r *Report) { r.MemoryPercent = f(-1) }, brownout.EINVALID, "memory_percent"},
		{"negative requests", func(r *Report) { r.Requests = -1 }, brownout.EINVALID, "requests"},
		{"errors above requests", func(r *Report) { r.Errors = r.Requests + 1 }, brownout.EINVALID, "errors"},
		{"error rate over 1", func(r *Report) { r.Requests, r.Errors, r.ErrorRate = 0, 0, f(1.1) }, brownout.EINVALID, "error_rate"},
		{"rate and counts", func(r *Report) { r.ErrorRate = f(0.1) }, brownout.EINVALID, "error_rate"},
		{"far future", func(r *Report) { r.At = &future }, brownout.EINVALID, "at"},
		{"far past", func(r *Report) { r.At = &past }, brownout.EINVALID, "at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rep("a", 10, 10, 100, 1)
			tt.mut(&r)
			err := r.Validate(t0)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			be, ok := err.(*brownout.Error)
			if !ok || be.Code != tt.code || be.Field != tt.field {
				t.Fatalf("got %#v, want %s on %s", err, tt.code, tt.field)
			}
		})
	}
}

func TestDecodeReports(t *testing.T) {
	tests := []struct {
		name, body string
		n          int
		code       string
		msg        string
	}{
		{"one", `{"service":"a","instance":"b","cpu_percent":1,"memory_percent":2}`, 1, "", ""},
		{"array", `[{"service":"a","instance":"b","cpu_percent":1,"memory_percent":2},{"service":"a","instance":"c","cpu_percent":1,"memory_percent":2}]`, 2, "", ""},
		{"empty", ``, 0, brownout.EBADREQUEST, "empty"},
		{"empty array", `[]`, 0, brownout.EBADREQUEST, "empty"},
		{"malformed", `{"service":`, 0, brownout.EBADREQUEST, "malformed"},
		{"unknown field", `{"service":"a","cpu":1}`, 0, brownout.EBADREQUEST, "cpu"},
		{"wrong type", `{"service":"a","cpu_percent":"high"}`, 0, brownout.EBADREQUEST, "cpu_percent"},
		{"trailing data", `{"service":"a"} {}`, 0, brownout.EBADREQUEST, "after"},
		{"array item unknown field", `[{"service":"a"},{"x":1}]`, 0, brownout.EBADREQUEST, "report 1"},
		{"fractional count", `{"requests":1.5}`, 0, brownout.EBADREQUEST, "requests"},
		{"bad time", `{"at":"yesterday"}`, 0, brownout.EBADREQUEST, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeReports(strings.NewReader(tt.body))
			if tt.code == "" {
				if err != nil || len(got) != tt.n {
					t.Fatalf("got %d reports, err %v", len(got), err)
				}
				return
			}
			if brownout.ErrorCode(err) != tt.code || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want %s containing %q", err, tt.code, tt.msg)
			}
		})
	}
	big := "[" + strings.Repeat(`{"service":"a","instance":"b","cpu_percent":1,"memory_percent":2},`, MaxBatch) + `{"service":"a","instance":"b","cpu_percent":1,"memory_percent":2}]`
	if _, err := DecodeReports(strings.NewReader(big)); brownout.ErrorCode(err) != brownout.ETOOLARGE {
		t.Fatalf("batch over %d: got %v, want too_large", MaxBatch, err)
	}
}

func TestObserveLatestReadings(t *testing.T) {
	w := NewWindow(30*time.Second, 30*time.Second)
	for i := 0; i < 9; i++ {
		w.Add(rep("a", 40, 50, 100, 0), t0.Add(time.Duration(i)*time.Second))
		w.Add(rep("b", 40, 30, 100, 0), t0.Add(time.Duration(i)*time.Second))
	}
	// The burst: both instances' newest reports read 100 % CPU and 10 %
	// errors; a late report from before (buffered while disconnected)
	// does not replace the newest.
	w.Add(rep("a", 100, 50, 100, 10), t0.Add(9*time.Second))
	w.Add(rep("b", 100, 30, 100, 10), t0.Add(9*time.Second))
	w.Add(rep("b", 5, 30, 100, 0), t0.Add(8500*time.Millisecond))
	o, live := w.Observe(t0.Add(9 * time.Second))
	if live != 2 {
		t.Fatalf("live %d", live)
	}
	if o.Latest.CPUPercent != 100 || o.Latest.MemoryPercent != 40 || math.Abs(o.Latest.ErrorRate-0.1) > 1e-12 {
		t.Fatalf("latest %+v", o.Latest)
	}
	if o.Window.CPUPercent > 50 || o.Window.ErrorRate > 0.02 {
		t.Fatalf("window %+v should still read the calm", o.Window)
	}
	if s, _ := w.Signals(t0.Add(9 * time.Second)); s != o.Window {
		t.Fatalf("Signals %+v, Observe's window %+v", s, o.Window)
	}
	// Too few requests in the latest reports for their own error rate:
	// the window's stands in.
	w.Add(rep("a", 40, 50, 3, 2), t0.Add(10*time.Second))
	w.Add(rep("b", 40, 30, 2, 1), t0.Add(10*time.Second))
	o, _ = w.Observe(t0.Add(10 * time.Second))
	if o.Latest.ErrorRate != o.Window.ErrorRate || o.Latest.ErrorRate > 0.1 {
		t.Fatalf("latest error rate %v on 5 requests, window %v", o.Latest.ErrorRate, o.Window.ErrorRate)
	}
	// A client that sends only a rate is taken at its word.
	er := 0.3
	w.Add(Report{Service: "checkout", Instance: "c", CPUPercent: f(10), MemoryPercent: f(10), ErrorRate: &er}, t0.Add(10*time.Second))
	o, _ = w.Observe(t0.Add(10 * time.Second))
	if got, want := o.Latest.ErrorRate, (2+1+0.3)/(3+2+1); math.Abs(got-want) > 1e-12 {
		t.Fatalf("latest error rate %v, want %v", got, want)
	}
}
