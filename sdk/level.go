package sdk

import (
	"fmt"
	"strconv"
	"strings"
)

// Level is a service's degradation level: 0 (full service) to 3
// (maintenance). Higher means more degraded.
type Level uint8

// The four levels, in increasing order of degradation.
const (
	LevelFull        Level = 0
	LevelReduced     Level = 1
	LevelEssential   Level = 2
	LevelMaintenance Level = 3
)

// MaxLevel is the most degraded level.
const MaxLevel = LevelMaintenance

var levelNames = [...]string{"FULL", "REDUCED", "ESSENTIAL", "MAINTENANCE"}

// String returns the level's name ("FULL", "REDUCED", "ESSENTIAL",
// "MAINTENANCE"), or "LEVEL(n)" for a value out of range.
func (l Level) String() string {
	if l.Valid() {
		return levelNames[l]
	}
	return "LEVEL(" + strconv.Itoa(int(l)) + ")"
}

// Valid reports whether l is one of the four levels.
func (l Level) Valid() bool { return l <= MaxLevel }

// ParseLevel accepts a level number ("0"–"3") or name ("ESSENTIAL",
// case-insensitive).
func ParseLevel(s string) (Level, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > int(MaxLevel) {
			return 0, fmt.Errorf("level %d out of range 0-3", n)
		}
		return Level(n), nil
	}
	for i, name := range levelNames {
		if strings.EqualFold(s, name) {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("invalid level %q: want 0-3 or FULL, REDUCED, ESSENTIAL, MAINTENANCE", s)
}
