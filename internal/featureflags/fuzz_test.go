package featureflags

import (
	"encoding/json"
	"testing"

	"github.com/brownout-io/brownout"
)

// FuzzSetValidate decodes arbitrary JSON into a flag Set as the API does and
// validates it as a global (full) or service set. Properties: nothing
// panics; an accepted set names 1–4 distinct levels within 0–3 (all four
// when full), at most MaxFlagsPerLevel valid flag names each; merging it
// with the defaults answers every level for every flag named anywhere.
func FuzzSetValidate(f *testing.F) {
	def, _ := json.Marshal(Default())
	f.Add(def, true)
	f.Add([]byte(`{"levels":[{"level":2,"flags":{"beta_search":true}}]}`), false)
	f.Add([]byte(`{"levels":[{"level":2,"flags":{}},{"level":2,"flags":{}}]}`), false)
	f.Add([]byte(`{"levels":[{"level":-1,"flags":{"A":true}}]}`), false)
	f.Add([]byte(`{"levels":[{"level":4}]}`), true)
	f.Add([]byte(`{"levels":null}`), true)
	f.Fuzz(func(t *testing.T, data []byte, full bool) {
		var s Set
		if err := brownout.DecodeJSON(data, &s); err != nil {
			if brownout.ErrorCode(err) != brownout.EBADREQUEST {
				t.Fatalf("decode error code %q: %v", brownout.ErrorCode(err), err)
			}
			return
		}
		if err := s.Validate(full); err != nil {
			if brownout.ErrorCode(err) != brownout.EINVALID {
				t.Fatalf("validate error code %q: %v", brownout.ErrorCode(err), err)
			}
			return
		}
		if len(s.Levels) < 1 || len(s.Levels) > Levels {
			t.Fatalf("valid set with %d levels", len(s.Levels))
		}
		seen := map[int]bool{}
		names := map[string]bool{}
		for _, lf := range s.Levels {
			if lf.Level < 0 || lf.Level >= Levels || seen[lf.Level] {
				t.Fatalf("valid set with level %d (seen before: %v)", lf.Level, seen[lf.Level])
			}
			seen[lf.Level] = true
			if len(lf.Flags) > MaxFlagsPerLevel {
				t.Fatalf("valid set with %d flags at level %d", len(lf.Flags), lf.Level)
			}
			for name := range lf.Flags {
				if !brownout.ValidName(name) {
					t.Fatalf("valid set with flag name %q", name)
				}
				names[name] = true
			}
		}
		if full && len(seen) != Levels {
			t.Fatalf("valid full set names %d levels", len(seen))
		}
		base := Default()
		if full {
			base = s
		}
		e := Merge(base, s)
		for _, lf := range Default().Levels {
			for name := range lf.Flags {
				if !full {
					names[name] = true
				}
			}
		}
		for l := -1; l <= Levels; l++ {
			m := e.For(l)
			for name := range names {
				if _, ok := m[name]; !ok {
					t.Fatalf("merged level %d does not answer for flag %q", l, name)
				}
			}
		}
	})
}
