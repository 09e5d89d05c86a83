package health

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/sdk/component"
)

// FuzzDecodeReports feeds arbitrary bodies to DecodeReports and Validate.
// Properties: nothing panics; a decode error is a 400 or 413 *brownout.Error;
// a report that decodes and validates holds only values inside the
// contract's ranges.
func FuzzDecodeReports(f *testing.F) {
	for _, s := range []string{
		`{"service":"checkout","instance":"c-1","cpu_percent":42.5,"memory_percent":60,"requests":100,"errors":3}`,
		`[{"service":"a","instance":"b","cpu_percent":0,"memory_percent":100,"requests":0,"errors":0,"error_rate":1}]`,
		`{"service":"a","instance":"b","cpu_percent":1e308,"memory_percent":-0,"requests":-1,"errors":0}`,
		`{"service":"a","instance":"b","cpu_percent":50,"memory_percent":50,"requests":5,"errors":6,"at":"2026-01-02T15:04:05Z"}`,
		`{"service":"a","instance":"b","cpu_percent":50,"memory_percent":50,"requests":1,"errors":0,"components":{"db":{"kind":"breaker","state":"open","metrics":{"failures":3}}}}`,
		`[]`, `[1,2]`, `{}`, `null`, ` `, `{"service":"a"}{"x":1}`, `{"unknown":true}`,
		`[` + string(bytes.Repeat([]byte(`{},`), 3)) + `{}]`,
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		reports, err := DecodeReports(bytes.NewReader(data))
		if err != nil {
			if code := brownout.ErrorCode(err); code != brownout.EBADREQUEST && code != brownout.ETOOLARGE {
				t.Fatalf("decode error code %q (%v), want bad_request or too_large", code, err)
			}
			return
		}
		if len(reports) == 0 || len(reports) > MaxBatch {
			t.Fatalf("decoded %d reports, want 1 to %d", len(reports), MaxBatch)
		}
		for i := range reports {
			r := &reports[i]
			if err := r.Validate(now); err != nil {
				if code := brownout.ErrorCode(err); code != brownout.EBADREQUEST && code != brownout.EINVALID {
					t.Fatalf("validate error code %q (%v)", code, err)
				}
				continue
			}
			checkValid(t, r, now)
		}
	})
}

func checkValid(t *testing.T, r *Report, now time.Time) {
	t.Helper()
	if !brownout.ValidName(r.Service) || !brownout.ValidName(r.Instance) {
		t.Fatalf("valid report with bad names %q/%q", r.Service, r.Instance)
	}
	inRange := func(name string, v, lo, hi float64) {
		if math.IsNaN(v) || v < lo || v > hi {
			t.Fatalf("valid report with %s = %v, want %v..%v", name, v, lo, hi)
		}
	}
	if r.CPUPercent == nil || r.MemoryPercent == nil {
		t.Fatal("valid report without cpu_percent or memory_percent")
	}
	inRange("cpu_percent", *r.CPUPercent, 0, 100)
	inRange("memory_percent", *r.MemoryPercent, 0, 100)
	if r.Requests < 0 || r.Requests > MaxCount || r.Errors < 0 || r.Errors > r.Requests {
		t.Fatalf("valid report with requests %d errors %d", r.Requests, r.Errors)
	}
	if r.ErrorRate != nil {
		inRange("error_rate", *r.ErrorRate, 0, 1)
		if r.Requests != 0 || r.Errors != 0 {
			t.Fatal("valid report with both error_rate and counts")
		}
	}
	if r.At != nil && (r.At.After(now.Add(MaxFuture)) || r.At.Before(now.Add(-MaxPast))) {
		t.Fatalf("valid report with at %v outside [now-%s, now+%s]", r.At, MaxPast, MaxFuture)
	}
	if len(r.Components) > component.MaxComponents {
		t.Fatalf("valid report with %d components", len(r.Components))
	}
	for name, c := range r.Components {
		if !brownout.ValidName(name) || len(c.Metrics) > component.MaxMetrics {
			t.Fatalf("valid report with component %q (%d metrics)", name, len(c.Metrics))
		}
		for m, v := range c.Metrics {
			if m == "" || len(m) > MaxComponentNameLen || math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("valid report with metric %q = %v", m, v)
			}
		}
	}
	// A valid report must be usable by the window without panicking.
	w := NewWindow(DefaultWindow, DefaultStaleAfter)
	w.Add(*r, now)
	sig, _ := w.Signals(now)
	inRange("window cpu", sig.CPUPercent, 0, 100)
	inRange("window memory", sig.MemoryPercent, 0, 100)
	inRange("window error rate", sig.ErrorRate, 0, 1)
}
