package sdk

import (
	"time"

	"github.com/brownout-io/brownout/sdk/component"
)

// Protocol constants shared with the controller.
const (
	subprotocol   = "brownout.v1"
	subscribePath = "/api/v1/subscribe"
	reportsPath   = "/api/v1/reports"
	// maxFrame is the largest frame the controller accepts from a client.
	maxFrame = 64 << 10
	// maxReadFrame bounds what the client accepts; states with many flags
	// may be larger than a client frame.
	maxReadFrame = 1 << 20
)

// inFrame is every server→client frame; Type says which fields are set.
type inFrame struct {
	Type          string          `json:"type"`
	Service       string          `json:"service"`
	Epoch         string          `json:"epoch,omitempty"`
	Version       uint64          `json:"version"`
	Level         int             `json:"level"`
	LevelName     string          `json:"level_name"`
	ComputedLevel int             `json:"computed_level"`
	Flags         map[string]bool `json:"flags"`
	Override      *Override       `json:"override"`
	Cause         string          `json:"cause"`
	ChangedAt     time.Time       `json:"changed_at"`
	Code          string          `json:"code,omitempty"`
	Message       string          `json:"message,omitempty"`
}

type ackFrame struct {
	Type    string `json:"type"`
	Version uint64 `json:"version"`
}

// Report is one health report: process load and the requests and errors
// counted since the previous report. It is the JSON body of a report frame
// and of POST /api/v1/reports.
type Report struct {
	// Service and Instance may be left empty on the websocket, which
	// identifies them; POST /api/v1/reports needs them.
	Service       string                     `json:"service,omitempty"`
	Instance      string                     `json:"instance,omitempty"`
	CPUPercent    float64                    `json:"cpu_percent"`
	MemoryPercent float64                    `json:"memory_percent"`
	Requests      int64                      `json:"requests"`
	Errors        int64                      `json:"errors"`
	At            time.Time                  `json:"at,omitzero"`
	Components    map[string]component.State `json:"components,omitempty"`
}

type reportFrame struct {
	Type string `json:"type"`
	Report
}

// remembered is the state file's content.
type remembered struct {
	Format  int       `json:"format"`
	SavedAt time.Time `json:"saved_at"`
	State   inFrame   `json:"state"`
	// LevelFlags is the last flag set the controller sent for each level,
	// keyed by level number, so that a forced or stale level can serve
	// flags the controller chose for it.
	LevelFlags map[Level]map[string]bool `json:"level_flags,omitempty"`
}
