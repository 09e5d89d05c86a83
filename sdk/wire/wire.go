// Package wire is the push protocol's contract: everything the controller
// and its clients (the SDK, the CLI, the load tool) must agree on — the
// frames, the levels and their names, the name rule, the size limits, the
// close codes and the subprotocol. Both sides import it; neither restates
// a frame, a limit or a level by hand.
//
// It depends on the standard library only, so that it costs an importer
// nothing.
package wire

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Subprotocol is the websocket subprotocol of the push protocol.
const Subprotocol = "brownout.v1"

// Paths of the protocol's endpoints, relative to the controller's base URL.
const (
	SubscribePath = "/api/v1/subscribe"
	ReportsPath   = "/api/v1/reports"
)

// Frame types, the "type" field of every frame.
const (
	// TypeState is a full snapshot of a service's state (server→client).
	TypeState = "state"
	// TypeUnchanged answers a subscribe whose version and epoch are the
	// current ones: the client's state stands (server→client).
	TypeUnchanged = "unchanged"
	// TypeError reports a refused client frame (server→client).
	TypeError = "error"
	// TypeAck confirms a state was applied (client→server).
	TypeAck = "ack"
	// TypeReport carries a health report (client→server).
	TypeReport = "report"
)

// Close codes the controller ends a subscription with.
const (
	// CloseShutdown (going away): the controller is stopping; reconnect.
	CloseShutdown = 1001
	// ClosePolicy (policy violation): the subscription was refused or the
	// client sent too many invalid frames.
	ClosePolicy = 1008
	// CloseTooBig: a client frame exceeded MaxClientFrame.
	CloseTooBig = 1009
	// CloseRevoked: the token was revoked; final for the client.
	CloseRevoked = 4401
	// CloseForbidden: the token may not subscribe to this service; final.
	CloseForbidden = 4403
)

// Size limits of the protocol. The controller's are defaults of flags; a
// client must stay within the defaults.
const (
	// MaxClientFrame is the largest frame the controller accepts from a
	// client by default (its --max-frame flag).
	MaxClientFrame = 64 << 10
	// MaxServerFrame is the largest frame a client should accept: a state
	// with many flags may be larger than a client frame.
	MaxServerFrame = 1 << 20
	// MaxNameLen is the longest service, instance, flag or component name.
	MaxNameLen = 64
	// MaxComponents is the most components one report may carry.
	MaxComponents = 64
	// MaxMetrics is the most metrics one component may carry.
	MaxMetrics = 32
	// MaxBatch is the most reports one POST of reports may carry.
	MaxBatch = 1000
	// MaxEpochLen is the longest epoch a client may send back.
	MaxEpochLen = 64
	// MaxCloseReason is the longest close reason a close frame allows.
	MaxCloseReason = 123
)

// NameRule describes valid names, for error messages.
const NameRule = "1-64 characters of [a-z0-9][a-z0-9._-]*"

// ValidName reports whether s is a valid service, instance, flag or
// component name: 1–64 characters of [a-z0-9][a-z0-9._-]*.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// Level is a service's degradation level: 0 (full service) to 3
// (maintenance). Higher means more degraded.
type Level int

// The four levels, in increasing order of degradation (the seed's names).
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
func (l Level) Valid() bool { return l >= LevelFull && l <= MaxLevel }

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

// Override is the operator override in force, as a state frame carries it.
type Override struct {
	ID      string `json:"id"`
	Service string `json:"service"`
	Level   Level  `json:"level"`
	Reason  string `json:"reason"`
	Actor   string `json:"actor"`
	// Emergency marks the global "force emergency mode" override.
	Emergency bool       `json:"emergency"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// State is a state frame: a full snapshot of one service's state. The
// controller encodes it once per change and sends the same bytes to every
// subscriber of the service.
type State struct {
	Type    string `json:"type"` // TypeState
	Service string `json:"service"`
	// Epoch names the controller's version history; versions compare only
	// within one epoch.
	Epoch         string          `json:"epoch"`
	Version       uint64          `json:"version"`
	Level         Level           `json:"level"`
	LevelName     string          `json:"level_name"`
	ComputedLevel Level           `json:"computed_level"`
	Flags         map[string]bool `json:"flags"`
	Override      *Override       `json:"override"`
	Cause         string          `json:"cause"`
	Detail        string          `json:"detail,omitempty"`
	ChangedAt     time.Time       `json:"changed_at"`
}

// Unchanged is an unchanged frame: the client's version and epoch are the
// controller's current ones.
type Unchanged struct {
	Type    string `json:"type"` // TypeUnchanged
	Service string `json:"service"`
	Epoch   string `json:"epoch,omitempty"`
	Version uint64 `json:"version"`
}

// Error is an error frame: the controller refused a client frame. The
// connection stays open (until too many frames in a row were refused).
type Error struct {
	Type    string `json:"type"` // TypeError
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// Ack is an ack frame: the client applied the state of this version.
type Ack struct {
	Type    string `json:"type"` // TypeAck
	Version uint64 `json:"version"`
}

// AppendAck appends the canonical ack frame for version v to b. The
// controller recognises exactly this spelling without a JSON decoder.
func AppendAck(b []byte, v uint64) []byte {
	b = append(b, AckPrefix...)
	b = strconv.AppendUint(b, v, 10)
	return append(b, '}')
}

// AckPrefix is how every canonical ack frame begins.
const AckPrefix = `{"type":"ack","version":`

// ParseAck recognises an ack in its canonical form (AppendAck's), without
// a JSON decoder: one arrives from every subscriber on every change. Any
// other spelling, even of an equivalent ack, returns ok false; decode it as
// JSON instead.
func ParseAck(data []byte) (version uint64, ok bool) {
	if len(data) < len(AckPrefix)+2 || string(data[:len(AckPrefix)]) != AckPrefix || data[len(data)-1] != '}' {
		return 0, false
	}
	digits := data[len(AckPrefix) : len(data)-1]
	if len(digits) == 0 || len(digits) > 20 || (digits[0] == '0' && len(digits) > 1) {
		return 0, false
	}
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(string(digits), 10, 64)
	return v, err == nil
}

// ComponentState is one resilience primitive's state as it travels in a
// report's "components" map, keyed by the name it was registered under.
type ComponentState struct {
	// Kind names the primitive: "breaker", "bulkhead", "ratelimit", "retry", …
	Kind string `json:"kind"`
	// State is a short word for discrete states ("closed", "open",
	// "half_open"); empty where the primitive has none.
	State string `json:"state,omitempty"`
	// Metrics holds numeric gauges and counters ("failure_rate", "in_use",
	// "queued", "rejected").
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// Report is one health report: process (or host) load and the requests
// and errors counted since the previous report. It is the body of a report
// frame and of POST ReportsPath (one, or an array of up to MaxBatch).
type Report struct {
	// Service and Instance may be left empty on the websocket, which
	// identifies them; a POST needs them.
	Service  string `json:"service,omitempty"`
	Instance string `json:"instance,omitempty"`
	// CPUPercent and MemoryPercent are 0–100 and required.
	CPUPercent    *float64 `json:"cpu_percent"`
	MemoryPercent *float64 `json:"memory_percent"`
	Requests      int64    `json:"requests"`
	Errors        int64    `json:"errors"`
	// ErrorRate (0–1) stands in for Requests and Errors for a client that
	// only knows a rate.
	ErrorRate  *float64                  `json:"error_rate,omitempty"`
	At         *time.Time                `json:"at,omitempty"`
	Components map[string]ComponentState `json:"components,omitempty"`
}

// ReportFrame is a report frame: a Report with its type.
type ReportFrame struct {
	Type string `json:"type"` // TypeReport
	Report
}

// Frame is any server→client frame decoded in one pass: the union of
// State, Unchanged and Error. Type says which fields are set.
type Frame struct {
	Type          string          `json:"type"`
	Service       string          `json:"service"`
	Epoch         string          `json:"epoch,omitempty"`
	Version       uint64          `json:"version"`
	Level         Level           `json:"level"`
	LevelName     string          `json:"level_name,omitempty"`
	ComputedLevel Level           `json:"computed_level"`
	Flags         map[string]bool `json:"flags,omitempty"`
	Override      *Override       `json:"override,omitempty"`
	Cause         string          `json:"cause,omitempty"`
	Detail        string          `json:"detail,omitempty"`
	ChangedAt     time.Time       `json:"changed_at,omitzero"`
	Code          string          `json:"code,omitempty"`
	Message       string          `json:"message,omitempty"`
	Field         string          `json:"field,omitempty"`
}

// DecodeFrame decodes a server→client frame. A state frame as the
// controller encodes it takes a path without reflection; anything else,
// and any state frame spelled otherwise, goes through encoding/json, with
// the same result.
func DecodeFrame(data []byte) (Frame, error) {
	if f, ok := decodeStateFast(data); ok {
		return f, nil
	}
	var f Frame
	err := json.Unmarshal(data, &f)
	return f, err
}
