package brownout

import (
	"context"
	"errors"
	"time"

	"github.com/brownout-io/brownout/sdk/api"
)

// Kinds of Change a store's change feed announces.
const (
	// ChangeState: a service's state was committed (Service, Version).
	ChangeState = "state"
	// ChangeRetire: a service was retired (Service, at Version, which a
	// retirement keeps): the receiver reads its state, retired, even
	// though it holds that version.
	ChangeRetire = "retire"
	// ChangeConfig: thresholds or flag sets changed (Service, or "" for
	// the global sets).
	ChangeConfig = "config"
	// ChangeOverride: an override was created, cleared or expired (ID).
	ChangeOverride = "override"
	// ChangeToken: a token was created or revoked (ID).
	ChangeToken = "token"
	// ChangeResync: the feed (re)connected; anything may have been missed,
	// so the receiver re-reads all it holds. It is always the first change
	// a listener delivers, and again after every reconnect.
	ChangeResync = "resync"
	// ChangeLost: the feed's connection was lost; it is reconnecting and
	// will deliver ChangeResync once it is back.
	ChangeLost = "lost"
)

// Change is one committed change as a store's change feed (LISTEN/NOTIFY
// in PostgreSQL) announces it to every replica, the committing one
// included. It names what changed; the receiver reads the committed state.
type Change struct {
	Kind    string `json:"kind"`
	Service string `json:"service,omitempty"`
	Version uint64 `json:"version,omitempty"`
	ID      string `json:"id,omitempty"`
	// More says that the same commit announces more state changes right
	// after this one, so that a receiver may read them all at once. A feed
	// delivers a commit's changes together, or loses its connection (and
	// then delivers ChangeLost); a receiver that ignores More reads them
	// one by one.
	More bool `json:"more,omitempty"`
	// Replica is the replica that committed the change, when known.
	Replica string `json:"replica,omitempty"`
	// At is when the change was committed, by the committing side's
	// clock; the receiver's lag is its own clock minus At.
	At time.Time `json:"at,omitzero"`
}

// Partial is what one replica folded from the reports it received for one
// service during one tick; the leader merges every replica's partials.
// Body is the replica's encoding, opaque to the store.
type Partial struct {
	Replica string
	Service string
	Tick    int64
	Body    []byte
}

// Replica is one controller replica as the replica set shows it.
type Replica = api.Replica

// Fence is the leadership a commit is made under: the committing replica
// and the leadership term it holds.
type Fence struct {
	Replica string
	Term    int64
}

// ErrFenced is returned (wrapped) by a store's state commit made under a
// Fence that no longer holds the leadership: another replica has led
// since, so the deposed leader's write is refused, whole.
var ErrFenced = &Error{Code: EUNAVAILABLE, Message: "this replica no longer leads; the write was refused"}

// ErrNotLeader is returned (wrapped) by a leadership attempt while another
// replica holds an unexpired lease.
var ErrNotLeader = errors.New("another replica leads")

type fenceKey struct{}

// WithFence returns a context whose state commits are fenced by f: a store
// shared by several replicas checks, in the committing transaction, that f
// still holds the leadership, and refuses the commit with ErrFenced when it
// does not. The fence travels in the context so that every store method
// that commits states checks it without each growing a parameter, and a
// store with a single writer (SQLite) can ignore it.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// FenceFrom returns the fence of ctx, if any.
func FenceFrom(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok
}
