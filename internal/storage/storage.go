// Package storage is Brownout's store contract: the errors, limits and
// method set every store implements, the pieces they share (the sample
// writer, the retention loop) and, in storagetest, the contract test suite
// every store passes. The stores live beneath it and do not know each
// other:
//
//   - storage/sqlite: the embedded default, one SQLite file in the data
//     directory, for one controller process.
//   - storage/postgres: PostgreSQL, for several controller replicas that
//     share one database.
//
// Consumers declare the small interfaces they need (controller.Store,
// auth's token store, the server's history reader) and the wiring in
// internal/app asserts that the chosen store satisfies them. Dialect
// differences live in the stores, never in their callers.
package storage

import (
	"context"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/featureflags"
	"github.com/brownout-io/brownout/internal/levels"
)

// ErrStaleVersion is wrapped by SaveServiceState when the stored version of
// the service is not lower than the one offered: versions never go back. It
// is a *brownout.Error with code ECONFLICT, so the HTTP layer maps it
// without knowing this package.
var ErrStaleVersion = &brownout.Error{Code: brownout.ECONFLICT, Message: "stale service state version"}

// Observer is called after each write transaction with the operation's name
// (e.g. "put_global_thresholds", "write_samples") and how long it took,
// failed or not. It must be fast and safe for concurrent use.
type Observer func(op string, d time.Duration)

// DefaultLimit is the page size when a Filter leaves Limit at zero.
const DefaultLimit = 100

// MaxPoints is the most points one QuerySamples call returns.
const MaxPoints = 10_000

// DefaultPruneBatch is Prune's batch size when it is given none.
const DefaultPruneBatch = 1000

// CheckSample refuses a sample that cannot be stored: a bad service name,
// or a time that does not fit in int64 nanoseconds (the zero time among
// them). Every store's WriteSamples refuses such a sample with this error.
func CheckSample(s brownout.Sample) error {
	if err := brownout.CheckName("service", s.Service); err != nil {
		return err
	}
	if s.At.Year() < 1678 || s.At.Year() > 2261 {
		return brownout.FieldErrorf(brownout.EBADREQUEST, "at", "%s is out of range", s.At)
	}
	return nil
}

// Store is the whole method set a store implements; storagetest.Run holds
// every store to it. Every method that takes an AuditEntry writes it in the
// same transaction as the change. Errors the caller caused are
// *brownout.Error (ENOTFOUND, ECONFLICT, EBADREQUEST naming the field);
// anything else is a wrapped driver error.
type Store interface {
	Close() error
	Ping(ctx context.Context) error
	SetObserver(fn Observer)
	// Epoch identifies the store's history; versions count within it.
	Epoch(ctx context.Context) (string, error)

	GlobalThresholds(ctx context.Context) (levels.Thresholds, bool, error)
	PutGlobalThresholds(ctx context.Context, t levels.Thresholds, a brownout.AuditEntry) error
	ServiceThresholds(ctx context.Context, service string) (levels.Thresholds, bool, error)
	AllServiceThresholds(ctx context.Context) (map[string]levels.Thresholds, error)
	PutServiceThresholds(ctx context.Context, service string, t levels.Thresholds, a brownout.AuditEntry) error
	DeleteServiceThresholds(ctx context.Context, service string, a brownout.AuditEntry) (bool, error)
	GlobalFlags(ctx context.Context) (featureflags.Set, bool, error)
	PutGlobalFlags(ctx context.Context, s featureflags.Set, a brownout.AuditEntry) error
	ServiceFlags(ctx context.Context, service string) (featureflags.Set, bool, error)
	AllServiceFlags(ctx context.Context) (map[string]featureflags.Set, error)
	PutServiceFlags(ctx context.Context, service string, s featureflags.Set, a brownout.AuditEntry) error
	DeleteServiceFlags(ctx context.Context, service string, a brownout.AuditEntry) (bool, error)

	LoadServices(ctx context.Context) ([]brownout.ServiceState, error)
	// SaveServiceState and SaveServiceStates refuse, with an error wrapping
	// ErrStaleVersion, a version that is not above the stored one.
	SaveServiceState(ctx context.Context, st brownout.ServiceState, changes []brownout.LevelChange) error
	SaveServiceStates(ctx context.Context, batch []brownout.StateChange) error
	// RetireService marks an active service retired (LoadServices returns
	// it with RetiredAt set; saving a state revives it) and writes the audit
	// entry, in one transaction; ENOTFOUND when no active service has the
	// name.
	RetireService(ctx context.Context, name string, at time.Time, a brownout.AuditEntry) error

	CreateOverride(ctx context.Context, o brownout.Override, a brownout.AuditEntry) error
	CreateOverrideWithStates(ctx context.Context, o brownout.Override, a brownout.AuditEntry, states []brownout.StateChange) error
	ClearOverride(ctx context.Context, id, by string, at time.Time, a brownout.AuditEntry) (brownout.Override, error)
	ClearOverrideWithStates(ctx context.Context, id, by string, at time.Time, a brownout.AuditEntry, states []brownout.StateChange) (brownout.Override, error)
	GetOverride(ctx context.Context, id string) (brownout.Override, error)
	ActiveOverrides(ctx context.Context, now time.Time) ([]brownout.Override, error)

	CreateToken(ctx context.Context, t brownout.Token, a brownout.AuditEntry) error
	ListTokens(ctx context.Context) ([]brownout.Token, error)
	ActiveTokens(ctx context.Context) ([]brownout.Token, error)
	RevokeToken(ctx context.Context, id string, at time.Time, a brownout.AuditEntry) (brownout.Token, error)

	// EndSession records a dashboard session ended before expires (signed
	// out), forgetting those expired by now; SessionEnded reports it.
	EndSession(ctx context.Context, id string, expires, now time.Time) error
	SessionEnded(ctx context.Context, id string) (bool, error)

	AppendAudit(ctx context.Context, a brownout.AuditEntry) error
	ListAudit(ctx context.Context, f brownout.Filter) (brownout.Page[brownout.AuditEntry], error)
	ListLevelChanges(ctx context.Context, f brownout.Filter) (brownout.Page[brownout.LevelChange], error)

	// Notifications (see outbox.go). SaveServiceState(s), the
	// *OverrideWithStates methods and AddEvents write the events they make
	// to the outbox, one delivery per webhook that wants the event, in the
	// same transaction as what the events report.
	CreateWebhook(ctx context.Context, w brownout.Webhook, a brownout.AuditEntry) error
	// ListWebhooks returns every webhook, oldest first, secrets included.
	ListWebhooks(ctx context.Context) ([]brownout.Webhook, error)
	// DeleteWebhook removes a webhook and its pending deliveries (its dead
	// letters stay, listed); ENOTFOUND when unknown.
	DeleteWebhook(ctx context.Context, id string, a brownout.AuditEntry) (brownout.Webhook, error)
	// AddEvents writes events to the outbox in one transaction: those
	// whose only durable trace is the notification (a service going
	// stale, an emergency override expiring).
	AddEvents(ctx context.Context, evs []brownout.Event) error
	// ClaimDeliveries leases up to n deliveries due at now whose lease is
	// free, oldest first, until now+lease; a delivery is held by one
	// claimer at a time, across replicas sharing the store.
	ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, n int) ([]brownout.Delivery, error)
	// StartAttempt counts one more attempt of a delivery and extends its
	// lease, durably, before the request is sent; it returns the attempts
	// so far. ENOTFOUND when the delivery is gone (its webhook deleted).
	StartAttempt(ctx context.Context, id string, now time.Time, lease time.Duration) (int, error)
	// FailAttempt records why the latest attempt failed.
	FailAttempt(ctx context.Context, id, msg string) error
	// CompleteDelivery removes a delivered delivery from the outbox.
	CompleteDelivery(ctx context.Context, id string) error
	// RetryLater frees a delivery's lease and makes it due at at, with msg
	// as its last error.
	RetryLater(ctx context.Context, id string, at time.Time, msg string) error
	// DeadLetter moves a delivery from the outbox to the dead letters.
	DeadLetter(ctx context.Context, id string, at time.Time, msg string) error
	// ListDeadLetters pages the dead letters, newest first.
	ListDeadLetters(ctx context.Context, f brownout.Filter) (brownout.Page[brownout.Delivery], error)
	// RedriveDeadLetter moves a dead letter back to the outbox, due at at
	// with its attempts reset, and writes a's audit entry; ENOTFOUND when
	// unknown, ECONFLICT when its webhook was deleted.
	RedriveDeadLetter(ctx context.Context, id string, at time.Time, a brownout.AuditEntry) (brownout.Delivery, error)
	// PruneDeadLetters deletes up to batch dead letters that died before
	// before, oldest first, and returns how many it deleted.
	PruneDeadLetters(ctx context.Context, before time.Time, batch int) (int, error)
	// OutboxStats counts pending deliveries and dead letters.
	OutboxStats(ctx context.Context) (pending, dead int, err error)

	WriteSamples(ctx context.Context, batch []brownout.Sample) error
	QuerySamples(ctx context.Context, service string, from, to time.Time, step time.Duration) ([]brownout.SamplePoint, error)
	Rollup(ctx context.Context, upTo time.Time) error
	Prune(ctx context.Context, now time.Time, raw, rollup time.Duration, batch int) (int, error)
}

// The SampleWriter's method set, so that a signature drift breaks the
// build here rather than in its callers.
var _ interface {
	Enqueue(s brownout.Sample) bool
	Dropped() uint64
	Close(ctx context.Context) error
} = (*SampleWriter)(nil)

// SetVersions writes the versions a store allocated into a committed
// batch: each state whose Version was 0 takes its version, and so does
// each of its Changes whose Version was 0. Stores call it after commit.
func SetVersions(batch []brownout.StateChange, versions []uint64) {
	for i := range batch {
		if i >= len(versions) {
			return
		}
		batch[i].State.Version = versions[i]
		for j := range batch[i].Changes {
			if batch[i].Changes[j].Version == 0 {
				batch[i].Changes[j].Version = versions[i]
			}
		}
	}
}

// ErrUnavailable is wrapped by a store's errors when the database cannot
// be reached (refused or broken connections, timeouts, a server shutting
// down). It is a *brownout.Error with code EUNAVAILABLE, so the HTTP layer
// answers 503; the store recovers on its own once the database is back.
var ErrUnavailable = &brownout.Error{Code: brownout.EUNAVAILABLE, Message: "the store is unavailable; try again"}
