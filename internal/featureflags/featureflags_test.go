package featureflags

import (
	"strings"
	"testing"

	"github.com/brownout-io/brownout"
)

func TestDefaultMatchesSeed(t *testing.T) {
	e := Merge(Default(), Set{})
	want := map[int]map[string]bool{
		0: {RealTimeData: true, Personalization: true, Analytics: true, Recommendations: true},
		1: {RealTimeData: true, Personalization: false, Analytics: false, Recommendations: false},
		2: {RealTimeData: false, Personalization: false, Analytics: false, Recommendations: false},
		3: {RealTimeData: false, Personalization: false, Analytics: false, Recommendations: false},
	}
	for l, w := range want {
		got := e.For(l)
		if len(got) != len(w) {
			t.Fatalf("level %d: got %v", l, got)
		}
		for k, v := range w {
			if got[k] != v {
				t.Errorf("level %d flag %s: got %v, want %v", l, k, got[k], v)
			}
		}
	}
	if err := Default().Validate(true); err != nil {
		t.Fatal(err)
	}
}

func TestMergeAddsAndReplaces(t *testing.T) {
	svc := Set{Levels: []LevelFlags{
		{Level: 1, Flags: map[string]bool{Analytics: true, "search_suggest": true}},
		{Level: 3, Flags: map[string]bool{"read_only": true}},
	}}
	e := Merge(Default(), svc)
	if !e.For(1)[Analytics] || !e.For(1)["search_suggest"] || !e.For(1)[RealTimeData] {
		t.Fatalf("level 1: %v", e.For(1))
	}
	// A flag named only at some levels is off where it is not named.
	if e.For(0)["search_suggest"] || e.For(2)["read_only"] || !e.For(3)["read_only"] {
		t.Fatalf("unnamed levels: 0=%v 2=%v 3=%v", e.For(0), e.For(2), e.For(3))
	}
	// The global set is untouched.
	if Default().Levels[1].Flags[Analytics] {
		t.Fatal("merge changed the global set")
	}
	if e.For(-1)[Analytics] != e.For(0)[Analytics] || len(e.For(9)) != len(e.For(3)) {
		t.Fatal("For does not clamp")
	}
}

func TestValidate(t *testing.T) {
	many := map[string]bool{}
	for i := 0; i < MaxFlagsPerLevel+1; i++ {
		many["f"+strings.Repeat("x", i%50)+string(rune('a'+i%26))+string(rune('a'+i/26))] = true
	}
	tests := []struct {
		name  string
		s     Set
		full  bool
		field string
	}{
		{"empty", Set{}, false, "levels"},
		{"level out of range", Set{Levels: []LevelFlags{{Level: 4}}}, false, "levels[0].level"},
		{"duplicate level", Set{Levels: []LevelFlags{{Level: 1}, {Level: 1}}}, false, "levels[1].level"},
		{"bad flag name", Set{Levels: []LevelFlags{{Level: 0, Flags: map[string]bool{"Bad Name": true}}}}, false, "levels[0].flags"},
		{"too many flags", Set{Levels: []LevelFlags{{Level: 0, Flags: many}}}, false, "levels[0].flags"},
		{"global missing a level", Set{Levels: []LevelFlags{{Level: 0}, {Level: 1}, {Level: 2}}}, true, "levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate(tt.full)
			be, ok := err.(*brownout.Error)
			if !ok || be.Code != brownout.EINVALID || be.Field != tt.field {
				t.Fatalf("got %#v, want invalid on %s", err, tt.field)
			}
		})
	}
	partial := Set{Levels: []LevelFlags{{Level: 2, Flags: map[string]bool{"x": true}}}}
	if err := partial.Validate(false); err != nil {
		t.Fatalf("service set with one level refused: %v", err)
	}
}
