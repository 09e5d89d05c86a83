package sdk

import (
	"maps"
	"strconv"
	"time"
)

// Source says where the state a client serves comes from.
type Source uint8

// Sources, from least to most authoritative for the moment.
const (
	// SourceDefaults: nothing known yet; the caller's defaults.
	SourceDefaults Source = iota
	// SourceFile: the last-known-good state loaded from the state file,
	// before the controller answered.
	SourceFile
	// SourceController: the last state the controller pushed. It is also
	// what is served during an outage under the default staleness policy
	// (see Stats().Connected for whether it is live).
	SourceController
	// SourceStale: the controller has been unreachable for longer than the
	// staleness policy allows; the policy's level is served.
	SourceStale
	// SourceForced: the host's break-glass switch forces the level.
	SourceForced
)

var sourceNames = [...]string{"defaults", "file", "controller", "stale", "forced"}

// String returns "defaults", "file", "controller", "stale" or "forced".
func (s Source) String() string {
	if int(s) < len(sourceNames) {
		return sourceNames[s]
	}
	return "source(" + strconv.Itoa(int(s)) + ")"
}

// State is what a client serves: a service's effective level and flags, and
// why. A State is immutable once published; Flags in particular is shared
// between readers and must not be modified.
type State struct {
	// Service is the service name.
	Service string
	// Version is the controller's version of this state; 0 if the controller
	// has never been heard from (and none was persisted).
	Version uint64
	// Level is the level this host serves, after the staleness policy and
	// the break-glass switch.
	Level Level
	// ControllerLevel is the effective level the controller last sent (or
	// the state file or defaults held), before local policies.
	ControllerLevel Level
	// ComputedLevel is the level the controller computed from signals,
	// before overrides.
	ComputedLevel Level
	// Flags is the effective flag set: the caller's defaults overlaid with
	// the flags for Level. Read-only.
	Flags map[string]bool
	// Override is the operator override in force, or nil.
	Override *Override
	// Cause is the controller's reason for the last change: "signal",
	// "override", "expiry", "initial" or "config".
	Cause string
	// ChangedAt is when the controller made the change.
	ChangedAt time.Time
	// Source says where the state comes from.
	Source Source
}

// Enabled reports the flag's value in this state; unknown flags are false.
func (s State) Enabled(flag string) bool { return s.Flags[flag] }

// same reports whether two states would look the same to a caller, so that
// re-evaluating local policies does not publish (and call back) for nothing.
func (s *State) same(o *State) bool {
	return s.Version == o.Version && s.Level == o.Level &&
		s.ControllerLevel == o.ControllerLevel && s.ComputedLevel == o.ComputedLevel &&
		s.Source == o.Source && s.Cause == o.Cause && s.ChangedAt.Equal(o.ChangedAt) &&
		s.Override == o.Override && maps.Equal(s.Flags, o.Flags)
}

// snapshot is what the atomic pointer holds. It is never modified after it
// is stored.
type snapshot struct {
	state State
}
