package sdk

import "github.com/brownout-io/brownout/sdk/wire"

// Level is a service's degradation level: 0 (full service) to 3
// (maintenance). Higher means more degraded. It is the wire contract's
// level, so the controller and the SDK cannot disagree on it.
type Level = wire.Level

// The four levels, in increasing order of degradation.
const (
	LevelFull        = wire.LevelFull
	LevelReduced     = wire.LevelReduced
	LevelEssential   = wire.LevelEssential
	LevelMaintenance = wire.LevelMaintenance
)

// MaxLevel is the most degraded level.
const MaxLevel = wire.MaxLevel

// ParseLevel accepts a level number ("0"–"3") or name ("ESSENTIAL",
// case-insensitive).
func ParseLevel(s string) (Level, error) { return wire.ParseLevel(s) }
