// Package api holds the resources of the controller's REST API
// (/api/v1) as they travel: what its endpoints answer and the bodies they
// accept. The controller encodes these types and the controlplane CLI
// decodes them, so a tool outside the repository can read the API with the
// same types, importing only this package, sdk/wire and sdk/component (the
// standard library and nothing else).
//
// The push protocol's frames are in sdk/wire; the controller serves the
// OpenAPI document that describes the endpoints at /api/openapi.yaml.
package api

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/brownout-io/brownout/sdk/component"
	"github.com/brownout-io/brownout/sdk/wire"
)

// Level is a degradation level, 0 (FULL) to 3 (MAINTENANCE).
type Level = wire.Level

// Page is one page of a list, newest first. NextCursor, when set, is the
// cursor query parameter that fetches the next page.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// GlobalScope is the override scope that matches every service.
const GlobalScope = "*"

// Override is an operator's decision that pins the effective level of one
// service, or of every service (Service == GlobalScope).
type Override struct {
	ID        string     `json:"id"`
	Service   string     `json:"service"`
	Level     int        `json:"level"`
	Reason    string     `json:"reason"`
	Actor     string     `json:"actor"`
	Emergency bool       `json:"emergency"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	ClearedAt *time.Time `json:"cleared_at,omitempty"`
	ClearedBy string     `json:"cleared_by,omitempty"`
}

// Active reports whether the override counts at time now.
func (o *Override) Active(now time.Time) bool {
	if o.ClearedAt != nil {
		return false
	}
	return o.ExpiresAt == nil || now.Before(*o.ExpiresAt)
}

// Matches reports whether the override's scope covers service.
func (o *Override) Matches(service string) bool {
	return o.Service == GlobalScope || o.Service == service
}

// OverrideRequest is the body of POST /overrides: pin Service (or
// GlobalScope) to Level for TTL (a Go duration; empty: until cleared).
type OverrideRequest struct {
	Service string `json:"service"`
	Level   *int   `json:"level"`
	Reason  string `json:"reason"`
	TTL     string `json:"ttl,omitempty"`
}

// EmergencyRequest is the body of POST /emergency.
type EmergencyRequest struct {
	Reason string `json:"reason"`
	TTL    string `json:"ttl,omitempty"`
}

// Emergency is the answer of GET /emergency.
type Emergency struct {
	Active   bool      `json:"active"`
	Override *Override `json:"override"`
}

// Token scopes.
const (
	ScopeAdmin  = "admin"
	ScopeViewer = "viewer"
	ScopeSDK    = "sdk"
)

// Token is an API credential as the API lists it. The secret is never
// stored; Hash is its SHA-256, kept by the controller and never sent.
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Scope     string     `json:"scope"`
	Service   string     `json:"service,omitempty"`
	Hash      []byte     `json:"-"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// TokenRequest is the body of POST /tokens. Service is required for, and
// only allowed with, ScopeSDK.
type TokenRequest struct {
	Scope   string `json:"scope"`
	Service string `json:"service,omitempty"`
	Name    string `json:"name"`
}

// CreatedToken is the answer of POST /tokens: the token and, this once,
// its secret.
type CreatedToken struct {
	Token
	Secret string `json:"token,omitempty"`
}

// AuditEntry records one operator action. Actor is the acting token's
// name and ActorID its ID: names are free text, IDs tell tokens apart.
type AuditEntry struct {
	ID      int64           `json:"-"`
	At      time.Time       `json:"at"`
	Actor   string          `json:"actor"`
	ActorID string          `json:"actor_id"`
	Action  string          `json:"action"`
	Target  string          `json:"target"`
	Before  json.RawMessage `json:"before"`
	After   json.RawMessage `json:"after"`
}

// ActorLabel shows an audit entry's actor as people read it: the name,
// and the token ID when it says more than the name ("alice (tok_1f…)").
func (a AuditEntry) ActorLabel() string {
	if a.ActorID == "" || a.ActorID == a.Actor {
		return a.Actor
	}
	return a.Actor + " (" + a.ActorID + ")"
}

// Level change kinds.
const (
	// KindEffective records a change of the level subscribers receive.
	KindEffective = "effective"
	// KindComputed records a change of the computed level that an override
	// hid from subscribers.
	KindComputed = "computed"
)

// Level change causes.
const (
	CauseSignal   = "signal"
	CauseOverride = "override"
	CauseExpiry   = "expiry"
)

// LevelChange records one change of a service's level with what it was
// decided on; Inputs decodes into LevelChangeInputs.
type LevelChange struct {
	ID        int64           `json:"-"`
	Service   string          `json:"service"`
	Kind      string          `json:"kind"`
	FromLevel int             `json:"from_level"`
	ToLevel   int             `json:"to_level"`
	At        time.Time       `json:"at"`
	Cause     string          `json:"cause"`
	Version   uint64          `json:"version"`
	Inputs    json.RawMessage `json:"inputs"`
}

// LevelChangeInputs is what a level change was decided on. Decision is set
// on a change the signals caused, Thresholds otherwise; Override is the
// override in force, PreviousOverrideID the one before it on a change an
// override caused, cleared or let expire.
type LevelChangeInputs struct {
	Signals Signals `json:"signals"`
	// Latest are the latest reports' signals (each live instance's most
	// recent report), on which levels escalate.
	Latest             Signals     `json:"latest"`
	Instances          int         `json:"instances"`
	ComputedLevel      Level       `json:"computed_level"`
	Decision           *Decision   `json:"decision,omitempty"`
	Thresholds         *Thresholds `json:"thresholds,omitempty"`
	Override           *Override   `json:"override,omitempty"`
	PreviousOverrideID string      `json:"previous_override_id,omitempty"`
}

// SamplePoint is one step of a service's signal history: means over the
// step, error rate weighted by requests, the most live instances seen.
type SamplePoint struct {
	At            time.Time `json:"at"`
	CPUPercent    float64   `json:"cpu_percent"`
	MemoryPercent float64   `json:"memory_percent"`
	ErrorRate     float64   `json:"error_rate"`
	Instances     int       `json:"instances"`
}

// Samples is the answer of GET /history/samples.
type Samples struct {
	Service string        `json:"service"`
	From    time.Time     `json:"from"`
	To      time.Time     `json:"to"`
	Step    string        `json:"step"`
	Items   []SamplePoint `json:"items"`
}

// Replica is one controller replica as GET /replicas shows it.
type Replica struct {
	ID          string    `json:"id"`
	Addr        string    `json:"addr"`
	Leader      bool      `json:"leader"`
	Term        int64     `json:"term,omitempty"`
	Subscribers int       `json:"subscribers"`
	LagMs       float64   `json:"lag_ms"`
	StartedAt   time.Time `json:"started_at"`
	SeenAt      time.Time `json:"seen_at"`
}

// RetiredService is the answer of DELETE /services/{service}: the
// service's last state and when it was retired.
type RetiredService struct {
	Name          string    `json:"name"`
	Version       uint64    `json:"version"`
	Level         int       `json:"level"`
	ComputedLevel int       `json:"computed_level"`
	Cause         string    `json:"cause"`
	Detail        string    `json:"detail,omitempty"`
	ChangedAt     time.Time `json:"changed_at"`
	CreatedAt     time.Time `json:"created_at"`
	RetiredAt     time.Time `json:"retired_at"`
}

// Signals are a service's aggregated signals.
type Signals struct {
	CPUPercent    float64 `json:"cpu_percent"`
	MemoryPercent float64 `json:"memory_percent"`
	ErrorRate     float64 `json:"error_rate"`
}

// Signal names as they appear in causes, triggers and field paths.
const (
	SignalCPU       = "cpu"
	SignalMemory    = "memory"
	SignalErrorRate = "error_rate"
)

// Bound is one signal's pair of thresholds for one level.
type Bound struct {
	Enter float64 `json:"enter"`
	Exit  float64 `json:"exit"`
}

// LevelThresholds are the bounds of one level (1–3).
type LevelThresholds struct {
	Level     Level `json:"level"`
	CPU       Bound `json:"cpu"`
	Memory    Bound `json:"memory"`
	ErrorRate Bound `json:"error_rate"`
}

// Thresholds is a complete threshold set: cooldown plus levels 1, 2 and 3
// in order.
type Thresholds struct {
	Cooldown Duration          `json:"cooldown"`
	Levels   []LevelThresholds `json:"levels"`
}

// Duration is a time.Duration that reads and writes as a Go duration
// string ("60s") in JSON.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "1m0s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"60s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"60s\"", s)
	}
	*d = Duration(v)
	return nil
}

// Trigger names the signal and threshold a decision turned on.
type Trigger struct {
	Signal    string  `json:"signal"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	// Source says where Value comes from: "latest" (the latest reports)
	// or "window" (the aggregate over the window).
	Source string `json:"source,omitempty"`
	// Kind is "enter" (a signal reached an enter threshold) or "exit" (every
	// signal stayed below the exit thresholds for the cooldown; Signal then
	// names the one closest to its exit threshold).
	Kind string `json:"kind"`
	// Level is the level whose threshold was used.
	Level Level `json:"level"`
}

// Decision explains a computed level change: what it was decided on.
type Decision struct {
	From    Level   `json:"from_level"`
	To      Level   `json:"to_level"`
	Trigger Trigger `json:"trigger"`
	// Signals are the window's aggregate, Latest the latest reports'.
	Signals    Signals         `json:"signals"`
	Latest     Signals         `json:"latest"`
	Thresholds LevelThresholds `json:"thresholds"`
	Cooldown   Duration        `json:"cooldown"`
	// CalmFor is how long the signals had stayed below exit, on a
	// de-escalation.
	CalmFor Duration `json:"calm_for,omitempty"`
}

// InstanceView is one instance of a service as GET /services/{service}
// shows it.
type InstanceView struct {
	Name          string                     `json:"name"`
	Stale         bool                       `json:"stale"`
	Connected     bool                       `json:"connected"`
	LastSeen      time.Time                  `json:"last_seen"`
	LastReport    *time.Time                 `json:"last_report"`
	Version       uint64                     `json:"version"`
	AckedAt       *time.Time                 `json:"acked_at,omitempty"`
	AckLatency    string                     `json:"ack_latency,omitempty"`
	CPUPercent    float64                    `json:"cpu_percent"`
	MemoryPercent float64                    `json:"memory_percent"`
	ErrorRate     float64                    `json:"error_rate"`
	Components    map[string]component.State `json:"components,omitempty"`
}

// Convergence says which live instances run which version.
type Convergence struct {
	Live       int            `json:"live"`
	OnCurrent  int            `json:"on_current"`
	Versions   map[uint64]int `json:"versions"`
	SlowestAck string         `json:"slowest_ack,omitempty"`
	Behind     []string       `json:"behind,omitempty"`
}

// ServiceView is a service as GET /services and GET /services/{service}
// show it.
type ServiceView struct {
	Name          string          `json:"name"`
	Level         int             `json:"level"`
	LevelName     string          `json:"level_name"`
	ComputedLevel int             `json:"computed_level"`
	Version       uint64          `json:"version"`
	Override      *Override       `json:"override"`
	Flags         map[string]bool `json:"flags"`
	Signals       Signals         `json:"signals"`
	Stale         bool            `json:"stale"`
	Cause         string          `json:"cause"`
	Detail        string          `json:"detail,omitempty"`
	ChangedAt     time.Time       `json:"changed_at"`
	CreatedAt     time.Time       `json:"created_at"`
	LastReport    *time.Time      `json:"last_report"`
	Subscribers   int             `json:"subscribers"`
	// InstanceCount and StaleInstances count every known instance and the
	// stale ones among them; lists carry these instead of Instances.
	InstanceCount  int `json:"instance_count"`
	StaleInstances int `json:"stale_instances"`
	// Instances is absent from lists; one service's view lists them
	// without their components.
	Instances        []InstanceView `json:"instances,omitempty"`
	Convergence      Convergence    `json:"convergence"`
	Thresholds       Thresholds     `json:"thresholds"`
	CustomThresholds bool           `json:"custom_thresholds"`
	CustomFlags      bool           `json:"custom_flags"`
}
