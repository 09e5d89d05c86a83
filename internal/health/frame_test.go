package health

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/brownout-io/brownout/sdk/wire"
)

func TestDecodeReportFrameTakes(t *testing.T) {
	cpu, mem := 20.5, 30.0
	at := time.Date(2026, 12, 2, 6, 27, 8, 783799546, time.UTC)
	sdk, err := json.Marshal(wire.ReportFrame{Type: wire.TypeReport, Report: wire.Report{CPUPercent: &cpu, MemoryPercent: &mem, Requests: 100, Errors: 3, At: &at}})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := DecodeReportFrame(sdk, "svc", "inst")
	if !ok {
		t.Fatalf("%s: not taken", sdk)
	}
	if r.Service != "" || r.Instance != "" || *r.CPUPercent != cpu || *r.MemoryPercent != mem || r.Requests != 100 || r.Errors != 3 || r.ErrorRate != nil || !r.At.Equal(at) {
		t.Fatalf("%s: got %+v", sdk, r)
	}
	cs := map[string]wire.ComponentState{"db": {Kind: "breaker", State: "open", Metrics: map[string]float64{"failures": 3, "rate": 0.5}}, "pool": {Kind: "bulkhead"}}
	withComponents, err := json.Marshal(wire.ReportFrame{Type: wire.TypeReport, Report: wire.Report{CPUPercent: &cpu, MemoryPercent: &mem, Components: cs}})
	if err != nil {
		t.Fatal(err)
	}
	r, ok = DecodeReportFrame(withComponents, "svc", "inst")
	if !ok || !reflect.DeepEqual(r.Components, cs) {
		t.Fatalf("%s: got %+v, %v", withComponents, r.Components, ok)
	}
	r, ok = DecodeReportFrame([]byte(`{"type":"report","service":"svc","instance":"other","cpu_percent":1,"memory_percent":2,"error_rate":0.25}`), "svc", "inst")
	if !ok || r.Service != "svc" || r.Instance != "other" || *r.ErrorRate != 0.25 || r.At != nil {
		t.Fatalf("got %+v, %v", r, ok)
	}
}

// Every frame the fast path leaves to the general decoder.
func TestDecodeReportFrameLeaves(t *testing.T) {
	for _, s := range []string{
		`{"type":"ack","version":1}`, `{}`, `{"cpu_percent":1}`, `{"type":"report","type":"report"}`,
		`{"type":"report","Type":"report"}`, `{"type":"report","cpu_percent":null}`, `{"type":"report","cpu_percent":01}`,
		`{"type":"report","cpu_percent":1e400}`, `{"type":"report","requests":1.5}`, `{"type":"report","service":"a\u0062"}`,
		`{"type":"report","components":null}`, `{"type":"report","components":{"DB":{}}}`, `{"type":"report","components":{"db":{},"db":{}}}`,
		`{"type":"report","components":{"db":{"Kind":"breaker"}}}`, `{"type":"report","components":{"db":{"metrics":{"a":1,"a":2}}}}`,
		`{"type":"report","components":{"db":{"kind":"a","kind":"b"}}}`, `{"type":"report","components":{"db":{"other":1}}}`,
		`{"type":"report","components":{"db":{"metrics":{"x":"1"}}}}`, `{"type":"report","components":[]}`, `{"type":"report","version":1}`, `{"type":"report"}{}`, `{"type":"report",}`,
		`{"type":"report","at":"yesterday"}`, `{"type":"report"`, `[{"type":"report"}]`, `{"type":"report","cpu_percent":-}`,
	} {
		if r, ok := DecodeReportFrame([]byte(s), "svc", "inst"); ok {
			t.Errorf("%s: taken as %+v", s, r)
		}
	}
}

func TestDecodeReportFrameAllocations(t *testing.T) {
	data := []byte(`{"type":"report","service":"svc","instance":"inst","cpu_percent":20.5,"memory_percent":30,"requests":100,"errors":3,"at":"2026-12-02T06:27:08.783799546Z"}`)
	got := testing.AllocsPerRun(100, func() {
		if _, ok := DecodeReportFrame(data, "svc", "inst"); !ok {
			t.Fatal("not taken")
		}
	})
	if got > 1 {
		t.Fatalf("%v allocations per frame, want at most 1", got)
	}
}

func BenchmarkDecodeReportFrame(b *testing.B) {
	data := []byte(`{"type":"report","cpu_percent":20.5,"memory_percent":30,"requests":100,"errors":3,"at":"2026-12-02T06:27:08.783799546Z"}`)
	b.ReportAllocs()
	for b.Loop() {
		DecodeReportFrame(data, "svc", "inst")
	}
}
