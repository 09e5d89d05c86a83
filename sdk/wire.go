package sdk

import (
	"time"

	"github.com/brownout-io/brownout/sdk/wire"
)

// Report is one health report: process (or host) load and the requests and
// errors counted since the previous report. It is the wire contract's
// report, the JSON body of a report frame and of POST /api/v1/reports.
type Report = wire.Report

// Override is an operator's decision that pins a service's level, as the
// controller sends it.
type Override = wire.Override

// remembered is the state file's content.
type remembered struct {
	Format  int        `json:"format"`
	SavedAt time.Time  `json:"saved_at"`
	State   wire.Frame `json:"state"`
	// LevelFlags is the last flag set the controller sent for each level,
	// keyed by level number, so that a forced or stale level can serve
	// flags the controller chose for it.
	LevelFlags map[Level]map[string]bool `json:"level_flags,omitempty"`
}
