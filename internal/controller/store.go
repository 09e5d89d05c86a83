package controller

import (
	"context"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/featureflags"
	"github.com/brownout-io/brownout/internal/levels"
)

// Store is what the controller needs from durable storage. Every method
// that takes an AuditEntry writes it in the same transaction as the change.
type Store interface {
	GlobalThresholds(ctx context.Context) (levels.Thresholds, bool, error)
	PutGlobalThresholds(ctx context.Context, t levels.Thresholds, a brownout.AuditEntry) error
	AllServiceThresholds(ctx context.Context) (map[string]levels.Thresholds, error)
	PutServiceThresholds(ctx context.Context, service string, t levels.Thresholds, a brownout.AuditEntry) error
	DeleteServiceThresholds(ctx context.Context, service string, a brownout.AuditEntry) (bool, error)

	GlobalFlags(ctx context.Context) (featureflags.Set, bool, error)
	PutGlobalFlags(ctx context.Context, s featureflags.Set, a brownout.AuditEntry) error
	AllServiceFlags(ctx context.Context) (map[string]featureflags.Set, error)
	PutServiceFlags(ctx context.Context, service string, s featureflags.Set, a brownout.AuditEntry) error
	DeleteServiceFlags(ctx context.Context, service string, a brownout.AuditEntry) (bool, error)

	LoadServices(ctx context.Context) ([]brownout.ServiceState, error)
	// SaveServiceStates saves every state with its level changes in one
	// transaction, all or nothing. It must refuse a version that is not
	// above the stored one, so that versions never go back.
	SaveServiceStates(ctx context.Context, batch []brownout.StateChange) error
	// RetireService marks an active service retired with its audit entry,
	// in one transaction (LoadServices then returns it with RetiredAt set;
	// saving a state for it revives it); ENOTFOUND when none is active.
	RetireService(ctx context.Context, name string, at time.Time, a brownout.AuditEntry) error

	// CreateOverrideWithStates and ClearOverrideWithStates store the
	// override change, its audit entry and the new states it causes in one
	// transaction, all or nothing (one fsync for an operator's click).
	CreateOverrideWithStates(ctx context.Context, o brownout.Override, a brownout.AuditEntry, states []brownout.StateChange) error
	// ClearOverrideWithStates returns ENOTFOUND for an unknown id and
	// ECONFLICT for one already cleared or expired.
	ClearOverrideWithStates(ctx context.Context, id, by string, at time.Time, a brownout.AuditEntry, states []brownout.StateChange) (brownout.Override, error)
	ActiveOverrides(ctx context.Context, now time.Time) ([]brownout.Override, error)

	AppendAudit(ctx context.Context, a brownout.AuditEntry) error
	// AddEvents writes notification events to the outbox, for changes
	// that have no other durable record (a service going stale, an
	// emergency override expiring). Events of saved states and overrides
	// are written by the methods above, in their transactions.
	AddEvents(ctx context.Context, evs []brownout.Event) error

	// Epoch identifies the store's history; versions count within it.
	Epoch(ctx context.Context) (string, error)
}

// SampleSink takes one sample per service per tick without blocking.
type SampleSink interface {
	Enqueue(s brownout.Sample) bool
}
