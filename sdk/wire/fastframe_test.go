package wire

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// canonicalStates are state frames as the controller encodes them
// (json.Marshal of State): with and without override, expiry, detail and
// flags, and with strings json.Marshal escapes.
func canonicalStates() [][]byte {
	at := time.Date(2026, 12, 2, 14, 9, 48, 123456789, time.UTC)
	exp := at.Add(15 * time.Minute)
	ov := &Override{ID: "ov_1", Service: "*", Level: LevelMaintenance, Reason: "peers benchmark", Actor: "admin", Emergency: true, CreatedAt: at, ExpiresAt: &exp}
	states := []State{
		{Service: "checkout", Epoch: "e1", Version: 1, Flags: map[string]bool{"analytics": true, "personalization": true, "real_time_data": true, "recommendations": true}, Cause: "initial", ChangedAt: at},
		{Service: "peers", Epoch: "0190f2c4-7a1b", Version: 18446744073709551615, Level: LevelEssential, ComputedLevel: LevelReduced,
			Flags: map[string]bool{"analytics": false, "real_time_data": false}, Override: ov, Cause: "override", Detail: "error_rate 10.32% ≥ 10.00%", ChangedAt: at},
		{Service: "a", Level: LevelReduced, Flags: map[string]bool{}, Override: &Override{ID: "x", CreatedAt: at}, Cause: "expiry"},
		{Service: "a", Version: 7},
		{Service: "a", Version: 7, Detail: `quoted "detail" <b>`, Cause: "signal", ChangedAt: at.In(time.FixedZone("", 3600))},
	}
	var out [][]byte
	for _, st := range states {
		st.Type, st.LevelName = TypeState, st.Level.String()
		b, err := json.Marshal(st)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}

// The controller's own frames take the fast path (all but the one whose
// detail json.Marshal escapes), and decode as encoding/json decodes them.
func TestDecodeStateFastTakesCanonicalFrames(t *testing.T) {
	frames := canonicalStates()
	for i, b := range frames {
		got, ok := decodeStateFast(b)
		if wantOK := i != len(frames)-1; ok != wantOK {
			t.Fatalf("%s: fast path ok = %v, want %v", b, ok, wantOK)
		}
		var want Frame
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if ok && !reflect.DeepEqual(got, want) {
			t.Fatalf("%s:\nfast path %+v\nencoding/json %+v", b, got, want)
		}
		dec, err := DecodeFrame(b)
		if err != nil || !reflect.DeepEqual(dec, want) {
			t.Fatalf("%s: DecodeFrame %+v, %v; want %+v", b, dec, err, want)
		}
	}
}

// Near misses of the canonical form are left to encoding/json.
func TestDecodeStateFastRefusesOtherSpellings(t *testing.T) {
	b := string(canonicalStates()[1])
	for _, s := range []string{
		" " + b, b + " ", b + "{}", b[:len(b)-1],
		strings.Replace(b, `"type":"state"`, `"type":"unchanged"`, 1),
		strings.Replace(b, `"version":18446744073709551615`, `"version":18446744073709551616`, 1),
		strings.Replace(b, `"level":2`, `"level":02`, 1),
		strings.Replace(b, `"level":2`, `"level":-2`, 1),
		strings.Replace(b, `"level":2`, `"level":2.0`, 1),
		strings.Replace(b, `"epoch":"0190f2c4-7a1b"`, `"epoch":"0190\u0066"`, 1),
		strings.Replace(b, `"epoch":"0190f2c4-7a1b"`, "\"epoch\":\"01\xff\"", 1),
		strings.Replace(b, `"epoch":"0190f2c4-7a1b"`, "\"epoch\":\"01\t\"", 1),
		strings.Replace(b, `"analytics":false`, `"analytics":0`, 1),
		strings.Replace(b, `"analytics":false,`, `"analytics":false,,`, 1),
		strings.Replace(b, `"emergency":true`, `"emergency":null`, 1),
		strings.Replace(b, `"changed_at":"2026-12-02T14:09:48.123456789Z"`, `"changed_at":"2026-12-02 14:09:48Z"`, 1),
		strings.Replace(b, `"cause"`, `"Cause"`, 1),
	} {
		if s == b {
			t.Fatalf("near miss equals the frame: %s", s)
		}
		if f, ok := decodeStateFast([]byte(s)); ok {
			t.Errorf("fast path took %s: %+v", s, f)
		}
	}
}

// FuzzDecodeFrameFastPath holds the state frame's fast decoder to
// encoding/json: whatever it accepts, json.Unmarshal accepts too and
// decodes to the same frame.
func FuzzDecodeFrameFastPath(f *testing.F) {
	for _, b := range canonicalStates() {
		f.Add(b)
	}
	f.Add([]byte(`{"type":"state","service":"a","epoch":"","version":0,"level":0,"level_name":"","computed_level":0,"flags":{"a":true,"a":false},"override":null,"cause":"","changed_at":"0001-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"type":"state","service":"a","epoch":"","version":0,"level":9999999999999999999,"level_name":"","computed_level":0,"flags":null,"override":null,"cause":"","changed_at":"0001-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"type":"unchanged","service":"a","version":3}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := decodeStateFast(data)
		if !ok {
			return
		}
		var want Frame
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("%q: fast path accepted what encoding/json refuses (%v): %+v", data, err, got)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\nfast path %+v\nencoding/json %+v", data, got, want)
		}
	})
}

func BenchmarkDecodeFrame(b *testing.B) {
	data := canonicalStates()[1]
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeFrame(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var f Frame
			if err := json.Unmarshal(data, &f); err != nil {
				b.Fatal(err)
			}
		}
	})
}
