package brownout

import (
	"time"

	"github.com/brownout-io/brownout/sdk/api"
)

// The API's resources are defined in sdk/api, so that the CLI and tools
// outside the repository decode the API with the types the controller
// encodes; these names keep the domain's vocabulary in one place.

// GlobalScope is the override scope that matches every service.
const GlobalScope = api.GlobalScope

// Override is an operator's decision that pins the effective level of one
// service, or of every service (Service == GlobalScope).
type Override = api.Override

// Token scopes.
const (
	ScopeAdmin  = api.ScopeAdmin
	ScopeViewer = api.ScopeViewer
	ScopeSDK    = api.ScopeSDK
)

// Token is an API credential. The secret is never stored; Hash is its
// SHA-256.
type Token = api.Token

// AuditEntry records one operator action.
type AuditEntry = api.AuditEntry

// Actor is who acts: the token's ID and its name.
type Actor struct {
	ID   string
	Name string
}

// SystemActor is the ID and name of the controller itself as an actor
// (override expiry, for one). It, and the bootstrap admin token's name
// "admin", are refused as names of new tokens, so that no token can pass
// for either in the audit log.
const SystemActor = "system"

// Level change kinds.
const (
	// KindEffective records a change of the level subscribers receive.
	KindEffective = api.KindEffective
	// KindComputed records a change of the computed level that an override
	// hid from subscribers.
	KindComputed = api.KindComputed
)

// Level change causes.
const (
	CauseSignal   = api.CauseSignal
	CauseOverride = api.CauseOverride
	CauseExpiry   = api.CauseExpiry
)

// LevelChange records one change of a service's level with what it was
// decided on.
type LevelChange = api.LevelChange

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

// SamplePoint is one step of a service's signal history.
type SamplePoint = api.SamplePoint

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
type Page[T any] = api.Page[T]

// MaxLimit is the largest page.
const MaxLimit = 1000
