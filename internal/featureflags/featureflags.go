// Package featureflags maps a degradation level to a flag set: global
// defaults per level, plus per-service sets that add or replace flags by
// name. The package is pure.
package featureflags

import (
	"fmt"
	"sort"

	"github.com/brownout-io/brownout"
)

// The seed's four flags.
const (
	RealTimeData    = "real_time_data"
	Personalization = "personalization"
	Analytics       = "analytics"
	Recommendations = "recommendations"
)

// Limits on a flag set.
const (
	// MaxFlagsPerLevel is the most flags one level may name.
	MaxFlagsPerLevel = 256
	// Levels is the number of levels (0–3).
	Levels = 4
)

// LevelFlags is the flag map of one level.
type LevelFlags struct {
	Level int             `json:"level"`
	Flags map[string]bool `json:"flags"`
}

// Set is a flag set: for some or all levels, flag name → on/off.
type Set struct {
	Levels []LevelFlags `json:"levels"`
}

// Default returns the seed's global flag set: level 0 all four flags on;
// level 1 only real_time_data; levels 2 and 3 all off.
func Default() Set {
	all := []string{RealTimeData, Personalization, Analytics, Recommendations}
	s := Set{}
	for l := 0; l < Levels; l++ {
		m := make(map[string]bool, len(all))
		for _, f := range all {
			m[f] = l == 0 || (l == 1 && f == RealTimeData)
		}
		s.Levels = append(s.Levels, LevelFlags{Level: l, Flags: m})
	}
	return s
}

// Validate checks level numbers, duplicates, flag names and sizes, and
// returns a *brownout.Error naming the first offending field. A global set
// must name every level (full=true); a service set may name only some.
func (s Set) Validate(full bool) error {
	if len(s.Levels) == 0 {
		return brownout.FieldErrorf(brownout.EINVALID, "levels", "must hold at least one level")
	}
	if len(s.Levels) > Levels {
		return brownout.FieldErrorf(brownout.EINVALID, "levels", "must hold at most %d entries", Levels)
	}
	seen := [Levels]bool{}
	for i, lf := range s.Levels {
		if lf.Level < 0 || lf.Level >= Levels {
			return brownout.FieldErrorf(brownout.EINVALID, fmt.Sprintf("levels[%d].level", i), "must be 0 to 3")
		}
		if seen[lf.Level] {
			return brownout.FieldErrorf(brownout.EINVALID, fmt.Sprintf("levels[%d].level", i), "level %d appears twice", lf.Level)
		}
		seen[lf.Level] = true
		if len(lf.Flags) > MaxFlagsPerLevel {
			return brownout.FieldErrorf(brownout.EINVALID, fmt.Sprintf("levels[%d].flags", i), "must hold at most %d flags", MaxFlagsPerLevel)
		}
		for _, name := range sortedKeys(lf.Flags) {
			if !brownout.ValidName(name) {
				return brownout.FieldErrorf(brownout.EINVALID, fmt.Sprintf("levels[%d].flags", i), "%q is not a valid flag name (%s)", name, brownout.NameRule)
			}
		}
	}
	if full {
		for l, ok := range seen {
			if !ok {
				return brownout.FieldErrorf(brownout.EINVALID, "levels", "the global set must name every level; level %d is missing", l)
			}
		}
	}
	return nil
}

// Effective is the merged flag set: for every level, every flag named
// anywhere in the global or service set, with an explicit value.
type Effective [Levels]map[string]bool

// Merge combines the global set with a service's own set (which may be
// empty): a service's flag replaces the global flag of the same name at the
// same level, and adds it otherwise. A flag named at some levels but not
// others is off where it is not named, so every level answers for every
// flag.
func Merge(global, service Set) Effective {
	names := map[string]struct{}{}
	for _, s := range []Set{global, service} {
		for _, lf := range s.Levels {
			for f := range lf.Flags {
				names[f] = struct{}{}
			}
		}
	}
	var e Effective
	for l := range e {
		e[l] = make(map[string]bool, len(names))
		for f := range names {
			e[l][f] = false
		}
	}
	for _, s := range []Set{global, service} {
		for _, lf := range s.Levels {
			if lf.Level < 0 || lf.Level >= Levels {
				continue
			}
			for f, on := range lf.Flags {
				e[lf.Level][f] = on
			}
		}
	}
	return e
}

// For returns the flags of a level (clamped to 0–3). The map is shared:
// callers must not modify it.
func (e Effective) For(level int) map[string]bool {
	if level < 0 {
		level = 0
	}
	if level >= Levels {
		level = Levels - 1
	}
	return e[level]
}

// AsSet returns the effective flags as a Set, levels 0–3 in order.
func (e Effective) AsSet() Set {
	s := Set{}
	for l := range e {
		s.Levels = append(s.Levels, LevelFlags{Level: l, Flags: e[l]})
	}
	return s
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
