package brownout

import (
	"encoding/json"
	"time"
)

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

// Token scopes.
const (
	ScopeAdmin  = "admin"
	ScopeViewer = "viewer"
	ScopeSDK    = "sdk"
)

// Token is an API credential. The secret is never stored; Hash is its
// SHA-256.
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

// Actor is who acts: the token's ID and its name.
type Actor struct {
	ID   string
	Name string
}

// ActorLabel shows an audit entry's actor as people read it: the name,
// and the token ID when it says more than the name ("alice (tok_1f…)").
func (a AuditEntry) ActorLabel() string {
	if a.ActorID == "" || a.ActorID == a.Actor {
		return a.Actor
	}
	return a.Actor + " (" + a.ActorID + ")"
}

// SystemActor is the ID and name of the controller itself as an actor
// (override expiry, for one). It, and the bootstrap admin token's name
// "admin", are refused as names of new tokens, so that no token can pass
// for either in the audit log.
const SystemActor = "system"

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
// decided on.
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

// ServiceState is what the controller persists of a service so that a
// restart resumes where it stopped: versions never go back.
type ServiceState struct {
	Name          string    `json:"name"`
	Version       uint64    `json:"version"`
	Level         int       `json:"level"`
	ComputedLevel int       `json:"computed_level"`
	OverrideID    string    `json:"override_id,omitempty"`
	CalmSince     time.Time `json:"calm_since,omitzero"`
	ChangedAt     time.Time `json:"changed_at"`
	Cause         string    `json:"cause"`
	// Detail says in words why the state is what it is, as subscribers
	// see it. A store shared by replicas keeps it, so that every replica
	// publishes the same snapshot; the single-replica store may drop it.
	Detail    string    `json:"detail,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// RetiredAt is when an admin retired the service (DELETE
	// /services/{s}); zero while it is active. A retired service keeps its
	// history and version: if it reports again it is revived, and its
	// versions continue above the stored one.
	RetiredAt time.Time `json:"retired_at,omitzero"`
}

// StateChange is one service's new state and the level changes that led
// to it, saved together.
type StateChange struct {
	State   ServiceState
	Changes []LevelChange
}

// Sample is a service's aggregated signals at one evaluation tick.
// Requests and Errors are what arrived since the previous tick.
type Sample struct {
	Service       string
	At            time.Time
	CPUPercent    float64
	MemoryPercent float64
	ErrorRate     float64
	Requests      float64
	Errors        float64
	Instances     int
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

// Filter selects history: level changes, audit entries.
type Filter struct {
	Service string // empty: all
	Actor   string // audit only; empty: all
	From    time.Time
	To      time.Time
	// Limit is 1–1000.
	Limit int
	// Cursor is the opaque next_cursor of the previous page.
	Cursor string
}

// Page is one page of a list, newest first.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// MaxLimit is the largest page.
const MaxLimit = 1000
