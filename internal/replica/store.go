package replica

import (
	"context"
	"time"

	"github.com/brownout-io/brownout"
)

// Feed is a store's change feed: every change committed by any replica,
// this one included, announced after commit (LISTEN/NOTIFY in
// PostgreSQL, the notification sent in the committing transaction).
type Feed interface {
	// Listen calls fn, from one goroutine and in the order received, for
	// every change until ctx ends, then returns nil. It reconnects on its
	// own: it calls fn with a ChangeLost change when its connection drops
	// and a ChangeResync change first after every (re)connect, the first
	// one included, so that the receiver re-reads what it holds and a
	// notification lost while disconnected never leaves it stale. It
	// returns an error only when it cannot listen at all.
	Listen(ctx context.Context, fn func(brownout.Change)) error
}

// Leadership is a store's leader election: at most one replica holds an
// unexpired lease at a time, and each new holder gets a greater term.
// Lease time is measured by the database's clock, so replicas' clocks do
// not matter.
type Leadership interface {
	// Lead takes the lease for replica when it is free or expired, or
	// renews it when replica holds it, for ttl. It returns the term held
	// (the fencing epoch, greater with every change of holder), or an
	// error wrapping brownout.ErrNotLeader while another replica holds an
	// unexpired lease. State commits made with brownout.WithFence(ctx,
	// Fence{replica, term}) fail with brownout.ErrFenced once the lease
	// has passed to another replica.
	Lead(ctx context.Context, replica string, ttl time.Duration) (term int64, err error)
	// Resign ends replica's lease of term at once, so that another
	// replica may lead without waiting for it to expire; a lease already
	// lost is not an error.
	Resign(ctx context.Context, replica string, term int64) error
}

// Partials carries reports from the replica that received them to the
// leader, folded per service per tick: raw reports never go through the
// store one by one.
type Partials interface {
	// PutPartials stores one replica's folds of one tick, one body per
	// service, in one transaction.
	PutPartials(ctx context.Context, replica string, tick int64, bodies map[string][]byte) error
	// TakePartials removes and returns every stored partial, oldest tick
	// first, in one transaction, so each is merged once.
	TakePartials(ctx context.Context) ([]brownout.Partial, error)
}

// Registry is the replica set as the store keeps it: one row per replica,
// refreshed by its heartbeat.
type Registry interface {
	// Heartbeat upserts r's row; the store sets SeenAt from its own clock.
	Heartbeat(ctx context.Context, r brownout.Replica) error
	// Replicas lists the replicas seen within the last `within`, by ID.
	Replicas(ctx context.Context, within time.Duration) ([]brownout.Replica, error)
}

// StateReader reads services' committed states, for changes the feed
// announced.
type StateReader interface {
	// LoadService returns the service's committed state (with Detail), or
	// an ENOTFOUND *brownout.Error.
	LoadService(ctx context.Context, name string) (brownout.ServiceState, error)
	// LoadServiceStates returns the committed states (with Detail) of the
	// named services in one read, leaving out names with no state.
	LoadServiceStates(ctx context.Context, names []string) ([]brownout.ServiceState, error)
	// LoadOverridesAndStates returns the overrides active at now, as
	// the controller's store lists them, and the committed states of the
	// named services (none when names is empty), in one round trip. The
	// overrides are read first, so that a state is never older than the
	// overrides read with it.
	LoadOverridesAndStates(ctx context.Context, now time.Time, names []string) ([]brownout.Override, []brownout.ServiceState, error)
}

// Store is everything a replica needs from a store shared by several
// replicas, on top of what the controller and the API need. Its state
// commits allocate versions in the committing transaction (a state saved
// with Version 0 takes the next one; the batch is updated in place) and
// keep ServiceState.Detail.
type Store interface {
	Feed
	Leadership
	Partials
	Registry
	StateReader
}
