package replica

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brownout-io/brownout"
)

// Controller is what a replica drives in the control loop.
type Controller interface {
	Leading() bool
	Lead(ctx context.Context, f brownout.Fence) error
	Follow()
	Resync(ctx context.Context) error
	ReloadConfig(ctx context.Context) error
	ReloadOverrides(ctx context.Context) error
	// ReloadOverridesWith is ReloadOverrides with the read given (load
	// returns the overrides active at now).
	ReloadOverridesWith(ctx context.Context, load func(ctx context.Context, now time.Time) ([]brownout.Override, error)) error
	Reevaluate(ctx context.Context, trigger string) error
	ApplyState(st brownout.ServiceState)
	HasVersion(service string, version uint64) bool
	TakeFolds() map[string][]byte
	MergePartials(ctx context.Context, parts []brownout.Partial) error
	FlushRequested() <-chan struct{}
}

// Tokens reloads the active tokens when another replica created or revoked
// one; revoked tokens' connections are closed by whoever it tells.
type Tokens interface {
	Reload(ctx context.Context) error
}

// Subscribers counts this replica's live subscriptions.
type Subscribers interface {
	Subscribers() int
}

// Observer receives a replica's events for metrics. Methods must not block.
type Observer interface {
	Leading(on bool)
	Failover()
	FeedLag(d time.Duration)
	FeedConnected(on bool)
}

type nopObserver struct{}

func (nopObserver) Leading(bool)          {}
func (nopObserver) Failover()             {}
func (nopObserver) FeedLag(time.Duration) {}
func (nopObserver) FeedConnected(bool)    {}

// Config tunes a replica. Zero values take the defaults.
type Config struct {
	// ID names this replica in the replica set; hostname-pid-random by
	// default.
	ID string
	// Addr is the URL operators reach this replica at (shown on the
	// dashboard).
	Addr string
	// LeaseTTL is how long a leader's lease lasts without renewal (2 s): a
	// dead leader is replaced within about LeaseTTL + Campaign.
	LeaseTTL time.Duration
	// Campaign is how often the lease is renewed or sought (LeaseTTL/4).
	Campaign time.Duration
	// Ship is how often a follower ships its folded reports and the leader
	// merges them (1 s, the evaluation interval).
	Ship time.Duration
	// Heartbeat is how often this replica's row is refreshed (1 s); a
	// replica not seen for 5 heartbeats leaves the replica set.
	Heartbeat time.Duration
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// DefaultID is a replica name unique enough for a replica set:
// hostname-pid-random.
func DefaultID() string {
	host, _ := os.Hostname()
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

func (c *Config) setDefaults() {
	if c.ID == "" {
		c.ID = DefaultID()
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 2 * time.Second
	}
	if c.Campaign <= 0 {
		c.Campaign = c.LeaseTTL / 4
	}
	if c.Ship <= 0 {
		c.Ship = time.Second
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// ErrFeedDown is returned by Ready while the change feed is not connected.
var ErrFeedDown = errors.New("change feed not connected")

// ErrCatchingUp is returned by Ready while the change feed is connected
// but this replica has not yet re-read what it may have missed (the read
// failed; it is retried every Ship interval).
var ErrCatchingUp = errors.New("change feed connected; re-reading the committed state")

// Replica is one controller replica over a shared store. Create it with
// New and Run it; Run returns when its context ends, after resigning.
type Replica struct {
	cfg    Config
	store  Store
	ctl    Controller
	tokens Tokens
	subs   Subscribers
	obs    Observer
	log    *slog.Logger

	started  time.Time
	dirty    atomic.Bool // a change could not be applied: resync
	lagNanos atomic.Int64

	// feedMu guards the feed's state: feedUp while the feed is connected
	// (from its resync change to its lost change), synced once the state
	// has been re-read since, and feedGen, bumped at every (re)connect, so
	// that a retried re-read that finishes after the feed dropped again
	// does not mark the replica ready.
	feedMu  sync.Mutex
	feedUp  bool
	synced  bool
	feedGen uint64

	mu      sync.Mutex
	term    int64
	renewed time.Time

	// States announced on the feed and not yet read: the feed's goroutine
	// adds them and wakes the reader, which reads all that accumulated in
	// one query, so that a leader's commit of many services costs a
	// follower one round trip rather than one per service. loadMu orders
	// those reads with the feed's other changes (see applyPending).
	pendingMu sync.Mutex
	pending   map[string]pendingState
	// overridesStale: an override was announced with the states it
	// changed; the overrides are re-read with those states.
	overridesStale bool
	wake           chan struct{}
	loadMu         sync.Mutex
}

// New returns a replica; obs and log may be nil.
func New(cfg Config, store Store, ctl Controller, tokens Tokens, subs Subscribers, obs Observer, log *slog.Logger) *Replica {
	cfg.setDefaults()
	if obs == nil {
		obs = nopObserver{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Replica{cfg: cfg, store: store, ctl: ctl, tokens: tokens, subs: subs, obs: obs, log: log.With("replica", cfg.ID), started: cfg.Now(),
		pending: map[string]pendingState{}, wake: make(chan struct{}, 1)}
}

// pendingState is a state change announced and not yet read: the newest
// version announced, and whether it must be read even if held (a
// retirement keeps the version).
type pendingState struct {
	version uint64
	retire  bool
}

// ID is this replica's name in the replica set.
func (r *Replica) ID() string { return r.cfg.ID }

// Ready reports ErrFeedDown while the change feed is disconnected: the
// replica may then serve stale states.
func (r *Replica) Ready() error {
	r.feedMu.Lock()
	defer r.feedMu.Unlock()
	switch {
	case !r.feedUp:
		return ErrFeedDown
	case !r.synced:
		return ErrCatchingUp
	}
	return nil
}

// feedState reports whether the feed is connected and its generation.
func (r *Replica) feedState() (up bool, gen uint64) {
	r.feedMu.Lock()
	defer r.feedMu.Unlock()
	return r.feedUp, r.feedGen
}

// setFeed records the feed going up (a new generation, not yet synced) or
// down.
func (r *Replica) setFeed(up bool) (gen uint64) {
	r.feedMu.Lock()
	r.feedUp, r.synced = up, false
	if up {
		r.feedGen++
	}
	gen = r.feedGen
	r.feedMu.Unlock()
	r.obs.FeedConnected(false)
	return gen
}

// markSynced records a completed re-read of generation gen; it is ignored
// when the feed dropped or reconnected meanwhile.
func (r *Replica) markSynced(gen uint64) {
	r.feedMu.Lock()
	ok := r.feedUp && r.feedGen == gen
	if ok {
		r.synced = true
	}
	r.feedMu.Unlock()
	if ok {
		r.obs.FeedConnected(true)
	}
}

// Term is the leadership term this replica holds, 0 when it follows.
func (r *Replica) Term() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ctl.Leading() {
		return 0
	}
	return r.term
}

// Lag is the latest change feed delay observed (commit to receipt).
func (r *Replica) Lag() time.Duration { return time.Duration(r.lagNanos.Load()) }

// Run listens to the feed, campaigns for leadership, ships or merges
// report partials and beats the heart until ctx ends, then resigns.
func (r *Replica) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); r.readStates(ctx) }()
	go func() { defer wg.Done(); r.listen(ctx) }()
	go func() { defer wg.Done(); r.campaign(ctx) }()
	go func() { defer wg.Done(); r.ship(ctx) }()
	r.heartbeat(ctx)
	wg.Wait()
	r.mu.Lock()
	term := r.term
	r.mu.Unlock()
	if r.ctl.Leading() {
		r.ctl.Follow()
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := r.store.Resign(rctx, r.cfg.ID, term); err != nil {
			r.log.Warn("resign", "err", err)
		}
		cancel()
		r.obs.Leading(false)
	}
}

func (r *Replica) listen(ctx context.Context) {
	for ctx.Err() == nil {
		err := r.store.Listen(ctx, func(ch brownout.Change) { r.apply(ctx, ch) })
		r.setFeed(false)
		if ctx.Err() != nil {
			return
		}
		r.log.Error("change feed", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// apply handles one change from the feed. It runs on the feed's goroutine,
// one change at a time, so that a configuration change is applied before
// the state commits it caused: a state change is queued for the reader
// (readStates), and any other change first applies the states queued
// before it.
func (r *Replica) apply(ctx context.Context, ch brownout.Change) {
	if !ch.At.IsZero() {
		lag := max(r.cfg.Now().Sub(ch.At), 0)
		r.lagNanos.Store(int64(lag))
		r.obs.FeedLag(lag)
	}
	if ch.Kind == brownout.ChangeState || ch.Kind == brownout.ChangeRetire {
		// A state this replica holds (its own commit, or one already
		// applied) costs no read. The reader is woken at the last state
		// change of a commit, so that it reads all of them at once.
		retire := ch.Kind == brownout.ChangeRetire
		if retire || !r.ctl.HasVersion(ch.Service, ch.Version) {
			r.pendingMu.Lock()
			p := r.pending[ch.Service]
			r.pending[ch.Service] = pendingState{version: max(p.version, ch.Version), retire: p.retire || retire}
			r.pendingMu.Unlock()
		}
		if !ch.More {
			select {
			case r.wake <- struct{}{}:
			default:
			}
		}
		return
	}
	if ch.Kind == brownout.ChangeOverride && ch.More {
		// The states the override changed are announced right after it:
		// the reader re-reads the overrides with them, in one round trip,
		// and applies the overrides first (applyPending).
		r.pendingMu.Lock()
		r.overridesStale = true
		r.pendingMu.Unlock()
		return
	}
	r.applyPending(ctx)
	var err error
	switch ch.Kind {
	case brownout.ChangeResync:
		// The feed is back; what it missed is re-read now. Should that
		// read fail (the database is only half back, a pooled connection
		// died with the old one), the replica stays not ready and the
		// ship loop retries it while the feed stays up.
		gen := r.setFeed(true)
		if err = r.resync(ctx); err == nil {
			r.markSynced(gen)
		}
	case brownout.ChangeLost:
		r.setFeed(false)
	case brownout.ChangeConfig:
		if err = r.ctl.ReloadConfig(ctx); err == nil {
			err = r.ctl.Reevaluate(ctx, "config")
		}
	case brownout.ChangeOverride:
		if err = r.ctl.ReloadOverrides(ctx); err == nil {
			err = r.ctl.Reevaluate(ctx, "override")
		}
	case brownout.ChangeToken:
		err = r.tokens.Reload(ctx)
	default:
		r.log.Warn("unknown change kind", "kind", ch.Kind)
	}
	if err != nil && ctx.Err() == nil {
		r.log.Warn("apply change; will resync", "kind", ch.Kind, "service", ch.Service, "err", err)
		r.dirty.Store(true)
	}
}

// readStates applies queued state changes until ctx ends.
func (r *Replica) readStates(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		r.applyPending(ctx)
	}
}

// applyPending reads every queued state change's committed state in one
// read and applies it (a state is applied only when newer than the one
// held). When an override announced with its states is pending too, the
// same read re-reads the overrides first, which are applied before the
// states; then a leader evaluates. A read that fails marks the replica for
// a resync.
func (r *Replica) applyPending(ctx context.Context) {
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	r.pendingMu.Lock()
	reload := r.overridesStale
	r.overridesStale = false
	if len(r.pending) == 0 && !reload {
		r.pendingMu.Unlock()
		return
	}
	names := make([]string, 0, len(r.pending))
	for name, p := range r.pending {
		if p.retire || !r.ctl.HasVersion(name, p.version) {
			names = append(names, name)
		}
	}
	clear(r.pending)
	r.pendingMu.Unlock()
	var sts []brownout.ServiceState
	var err error
	switch {
	case reload:
		err = r.ctl.ReloadOverridesWith(ctx, func(ctx context.Context, now time.Time) ([]brownout.Override, error) {
			ovs, read, err := r.store.LoadOverridesAndStates(ctx, now, names)
			sts = read
			return ovs, err
		})
	case len(names) == 0:
		return
	case len(names) == 1:
		var st brownout.ServiceState
		if st, err = r.store.LoadService(ctx, names[0]); err == nil {
			sts = append(sts, st)
		}
	default:
		sts, err = r.store.LoadServiceStates(ctx, names)
	}
	if err == nil && len(sts) < len(names) {
		err = fmt.Errorf("%d of %d announced services have no state", len(names)-len(sts), len(names))
	}
	for _, st := range sts {
		r.ctl.ApplyState(st)
	}
	if err == nil && reload {
		err = r.ctl.Reevaluate(ctx, "override")
	}
	if err != nil && ctx.Err() == nil {
		r.log.Warn("apply changes; will resync", "kind", brownout.ChangeState, "services", len(names), "overrides", reload, "err", err)
		r.dirty.Store(true)
	}
}

func (r *Replica) resync(ctx context.Context) error {
	if err := r.ctl.Resync(ctx); err != nil {
		return err
	}
	if err := r.tokens.Reload(ctx); err != nil {
		return err
	}
	r.dirty.Store(false)
	return r.ctl.Reevaluate(ctx, "config")
}

func (r *Replica) campaign(ctx context.Context) {
	t := time.NewTicker(r.cfg.Campaign)
	defer t.Stop()
	for {
		r.campaignOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Replica) campaignOnce(ctx context.Context) {
	now := r.cfg.Now()
	cctx, cancel := context.WithTimeout(ctx, r.cfg.LeaseTTL/2)
	term, err := r.store.Lead(cctx, r.cfg.ID, r.cfg.LeaseTTL)
	cancel()
	leading := r.ctl.Leading()
	r.mu.Lock()
	held, renewed := r.term, r.renewed
	r.mu.Unlock()
	switch {
	case err == nil && leading && term == held:
		r.mu.Lock()
		r.renewed = now
		r.mu.Unlock()
	case err == nil:
		// New leadership (or a new term after losing it unawares): ship
		// what this replica folded, then take over from the committed
		// state.
		r.shipOnce(ctx)
		if err := r.ctl.Lead(ctx, brownout.Fence{Replica: r.cfg.ID, Term: term}); err != nil {
			r.log.Error("take leadership", "term", term, "err", err)
			r.ctl.Follow()
			return
		}
		r.mu.Lock()
		r.term, r.renewed = term, now
		r.mu.Unlock()
		r.obs.Leading(true)
		if term > 1 {
			r.obs.Failover()
		}
		r.log.Info("took leadership", "term", term)
	case errors.Is(err, brownout.ErrNotLeader):
		if leading {
			r.log.Warn("lost leadership", "term", held)
			r.ctl.Follow()
			r.obs.Leading(false)
		}
	default:
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("leadership lease", "err", err)
		// Unable to renew: once the lease may have run out, another
		// replica may lead; stop evaluating (commits are fenced anyway).
		if leading && now.Sub(renewed) >= r.cfg.LeaseTTL {
			r.log.Warn("lease may have expired; following", "term", held)
			r.ctl.Follow()
			r.obs.Leading(false)
		}
	}
	if !r.ctl.Leading() && leading {
		r.obs.Leading(false)
	}
}

func (r *Replica) ship(ctx context.Context) {
	t := time.NewTicker(r.cfg.Ship)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.ctl.FlushRequested():
		}
		r.shipOnce(ctx)
		if up, gen := r.feedState(); r.dirty.Load() && up {
			if err := r.resync(ctx); err != nil {
				r.log.Warn("resync", "err", err)
			} else {
				r.markSynced(gen)
			}
		}
	}
}

// shipOnce ships this follower's folds, or merges every replica's when
// leading.
func (r *Replica) shipOnce(ctx context.Context) {
	if r.ctl.Leading() {
		parts, err := r.store.TakePartials(ctx)
		if err != nil {
			r.log.Warn("take report partials", "err", err)
			return
		}
		if len(parts) > 0 {
			if err := r.ctl.MergePartials(ctx, parts); err != nil {
				r.log.Warn("merge report partials", "err", err)
			}
		}
		return
	}
	folds := r.ctl.TakeFolds()
	if len(folds) == 0 {
		return
	}
	if err := r.store.PutPartials(ctx, r.cfg.ID, r.cfg.Now().UnixNano(), folds); err != nil {
		r.log.Warn("ship report partials; these reports are lost", "services", len(folds), "err", err)
	}
}

func (r *Replica) heartbeat(ctx context.Context) {
	t := time.NewTicker(r.cfg.Heartbeat)
	defer t.Stop()
	for {
		rep := brownout.Replica{
			ID: r.cfg.ID, Addr: r.cfg.Addr, Leader: r.ctl.Leading(), Term: r.Term(),
			Subscribers: r.subs.Subscribers(), LagMs: float64(r.Lag().Microseconds()) / 1000, StartedAt: r.started,
		}
		hctx, cancel := context.WithTimeout(ctx, r.cfg.Heartbeat)
		if err := r.store.Heartbeat(hctx, rep); err != nil && ctx.Err() == nil {
			r.log.Warn("heartbeat", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Replicas lists the replica set: every replica seen within five
// heartbeats.
// A dead leader's last heartbeat still says it leads; of the replicas
// that claim to, only the one with the greatest term does.
func (r *Replica) Replicas(ctx context.Context) ([]brownout.Replica, error) {
	rs, err := r.store.Replicas(ctx, 5*r.cfg.Heartbeat)
	if err != nil {
		return nil, err
	}
	var top int64
	for _, x := range rs {
		if x.Leader && x.Term > top {
			top = x.Term
		}
	}
	for i := range rs {
		if rs[i].Leader && rs[i].Term < top {
			rs[i].Leader, rs[i].Term = false, 0
		}
	}
	return rs, nil
}
