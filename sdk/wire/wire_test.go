package wire

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAckRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 42, 1<<64 - 1} {
		b := AppendAck(nil, v)
		got, ok := ParseAck(b)
		if !ok || got != v {
			t.Fatalf("ParseAck(%s) = %d, %v; want %d", b, got, ok, v)
		}
		var a Ack
		if err := json.Unmarshal(b, &a); err != nil || a.Type != TypeAck || a.Version != v {
			t.Fatalf("the canonical ack %s is not an Ack: %+v, %v", b, a, err)
		}
		enc, _ := json.Marshal(Ack{Type: TypeAck, Version: v})
		if string(enc) != string(b) {
			t.Fatalf("json.Marshal(Ack) = %s, AppendAck = %s", enc, b)
		}
	}
	for _, s := range []string{``, `{"type":"ack","version":}`, `{"type":"ack","version":01}`, `{"type":"ack","version":-1}`,
		`{"type":"ack","version":18446744073709551616}`, `{"type":"ack", "version":1}`, `{"type":"ack","version":1,"x":2}`} {
		if _, ok := ParseAck([]byte(s)); ok {
			t.Errorf("ParseAck(%s) accepted a non-canonical ack", s)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, s := range []string{"a", "checkout", "checkout-7f9c", "a.b_c-d", "0", strings.Repeat("a", MaxNameLen)} {
		if !ValidName(s) {
			t.Errorf("ValidName(%q) = false", s)
		}
	}
	for _, s := range []string{"", "-a", ".a", "_a", "A", "a b", "a/b", "é", strings.Repeat("a", MaxNameLen+1)} {
		if ValidName(s) {
			t.Errorf("ValidName(%q) = true", s)
		}
	}
}

func TestLevels(t *testing.T) {
	for l := LevelFull; l <= MaxLevel; l++ {
		got, err := ParseLevel(l.String())
		if err != nil || got != l {
			t.Errorf("ParseLevel(%q) = %v, %v", l.String(), got, err)
		}
		got, err = ParseLevel(strings.ToLower(l.String()))
		if err != nil || got != l {
			t.Errorf("ParseLevel(lower %q) = %v, %v", l.String(), got, err)
		}
	}
	if got := []string{LevelFull.String(), LevelReduced.String(), LevelEssential.String(), LevelMaintenance.String()}; strings.Join(got, ",") != "FULL,REDUCED,ESSENTIAL,MAINTENANCE" {
		t.Fatalf("names %v", got)
	}
	for _, s := range []string{"4", "-1", "", "HIGH"} {
		if _, err := ParseLevel(s); err == nil {
			t.Errorf("ParseLevel(%q) accepted", s)
		}
	}
	if Level(4).Valid() || Level(-1).Valid() || Level(4).String() != "LEVEL(4)" {
		t.Fatal("out-of-range levels")
	}
}

// jsonFields maps a struct type's JSON names to their Go types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out[name] = f.Type
	}
	return out
}

// Frame decodes every server→client frame, so it must carry each field of
// State, Unchanged and Error under the same JSON name and type.
func TestFrameIsTheUnionOfServerFrames(t *testing.T) {
	frame := jsonFields(reflect.TypeFor[Frame]())
	for _, typ := range []reflect.Type{reflect.TypeFor[State](), reflect.TypeFor[Unchanged](), reflect.TypeFor[Error]()} {
		for name, ft := range jsonFields(typ) {
			if got, ok := frame[name]; !ok || got != ft {
				t.Errorf("%s.%s (%v): Frame has %v", typ.Name(), name, ft, got)
			}
		}
	}
	exp := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := State{Type: TypeState, Service: "checkout", Epoch: "e1", Version: 9, Level: LevelEssential, LevelName: "ESSENTIAL",
		ComputedLevel: LevelReduced, Flags: map[string]bool{"a": true}, Cause: "override", ChangedAt: exp,
		Override: &Override{ID: "o1", Service: "checkout", Level: LevelEssential, Reason: "r", Actor: "me", CreatedAt: exp, ExpiresAt: &exp}}
	b, _ := json.Marshal(st)
	f, err := DecodeFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 9 || f.Epoch != "e1" || f.Level != LevelEssential || f.ComputedLevel != LevelReduced || !f.Flags["a"] ||
		f.Override == nil || !f.Override.ExpiresAt.Equal(exp) || !f.ChangedAt.Equal(exp) {
		t.Fatalf("decoded %+v from %s", f, b)
	}
}
