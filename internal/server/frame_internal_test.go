package server

import (
	"reflect"
	"testing"

	"github.com/brownout-io/brownout"
)

// reportFrameSeeds are report frames as the SDK and the load tool send
// them, and near misses of every rule the fast path keeps.
var reportFrameSeeds = []string{
	`{"type":"report","cpu_percent":20.5,"memory_percent":30,"requests":100,"errors":0}`,
	`{"type":"report","cpu_percent":1.5,"memory_percent":2,"requests":3,"errors":0,"at":"2026-12-02T06:27:08.783799546Z"}`,
	` {"type" : "report", "service":"svc","instance":"inst","cpu_percent":0,"memory_percent":100,"error_rate":1e-2}` + "\n",
	`{"type":"report","service":"other","instance":"inst","cpu_percent":-0,"memory_percent":1E+2,"requests":-1,"errors":2}`,
	`{"cpu_percent":20,"memory_percent":30,"type":"report"}`,
	`{"type":"report"}`, `{"type":"report",}`, `{"type":"ack","version":3}`, `{"type":"ack"}`,
	`{"type":"report","type":"report"}`, `{"type":"report","TYPE":"report"}`, `{"Type":"report"}`,
	`{"type":"report","cpu_percent":20,"Cpu_percent":20}`, `{"type":"report","cpu_percent":20,"cpu_percent":21}`,
	`{"type":"report","cpu_percent":01}`, `{"type":"report","cpu_percent":.5}`, `{"type":"report","cpu_percent":1.}`,
	`{"type":"report","cpu_percent":+1}`, `{"type":"report","cpu_percent":1e999}`, `{"type":"report","cpu_percent":NaN}`,
	`{"type":"report","cpu_percent":null}`, `{"type":"report","cpu_percent":"20"}`, `{"type":"report","requests":1.0}`,
	`{"type":"report","requests":1e2}`, `{"type":"report","requests":9223372036854775808}`, `{"type":"report","errors":-0}`,
	`{"type":"report","at":"2026-12-02T06:27:08Z"}`, `{"type":"report","at":"2026-12-02 06:27:08Z"}`, `{"type":"report","at":null}`,
	`{"type":"report","at":"2026-12-02T06:27:08+01:00"}`, `{"type":"report","service":"a\u0062"}`, `{"type":"report","service":"ä"}`,
	`{"type":"report","version":2}`, `{"type":"report","unknown":1}`, `{"type":"report"} {}`, `{"type":"report"}x`,
	`{"type":"report","components":{"db":{"kind":"breaker","state":"open","metrics":{"x":1}}}}`,
	`{"type":"report","components":{}}`, `{"type":"report","components":{"a":{},"b":{"metrics":{}}}}`,
	`{"type":"report","components":{"db":{"kind":"breaker"},"DB":{"kind":"breaker"}}}`, `{"type":"report","components":{"db":{"metrics":{"x":1,"X":2}}}}`,
	`{"type":"report","components":{"db":{"kind":"a","kind":"b"}}}`, `{"type":"report","components":{"db":{"Kind":"a"}}}`,
	`{"type":"report","components":{"db":{"metrics":{"x":1e999}}}}`, `{"type":"report","components":{"db":null}}`,
	`{"type":"report","components":{"db":{"metrics":null}}}`, `{"type":"report","components":{"db":{"state":"\u006f"}}}`,
	`{"type":"report","cpu_percent":1 2}`, `{"type":"report","cpu_percent":1true}`, `{"type":"report"`, `{"type":"report",`,
	`{"type":"rep\u006frt"}`, `{"type":"nope"}`, `{}`, `[]`, `null`, ``, `{"type":"report","requests":12,"errors":3}`,
}

// FuzzReportFrameFastPath holds the report frame's fast decoder to the
// general one: for any input, decodeClientFrame and brownout.DecodeJSON
// into clientFrame either both refuse it with the same code, message and
// field, or both accept it with the same frame.
func FuzzReportFrameFastPath(f *testing.F) {
	for _, s := range reportFrameSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, gotErr := decodeClientFrame(data, "svc", "inst")
		var want clientFrame
		wantErr := brownout.DecodeJSON(data, &want)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: fast path error %v, general decoder %v", data, gotErr, wantErr)
		}
		if wantErr != nil {
			if brownout.ErrorCode(gotErr) != brownout.ErrorCode(wantErr) || brownout.ErrorMessage(gotErr) != brownout.ErrorMessage(wantErr) || fieldOf(gotErr) != fieldOf(wantErr) {
				t.Fatalf("%q: fast path error %v, general decoder %v", data, gotErr, wantErr)
			}
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: fast path %+v, general decoder %+v", data, got, want)
		}
	})
}

func fieldOf(err error) string {
	if be, ok := err.(*brownout.Error); ok {
		return be.Field
	}
	return ""
}
