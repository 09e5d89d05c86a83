// Package controller runs the control loop: it ingests reports into each
// service's window, evaluates levels on a tick, applies overrides, and for
// every change computes the next state, commits it with a strictly
// increasing version, and only then hands the snapshot to the hub
// (compute → commit → publish). It owns no sockets: the hub does.
//
// The parts can be read alone: controller.go is the loop, config.go the
// configuration and override cache, service.go the per-service state and
// the read models the API and dashboard show.
//
// Locking: Controller.mu guards the service map; service.mu guards a
// service's window, instances and state; service.commitMu serialises
// state transitions (compute → commit) of one service. No controller lock
// is held while the hub is called: the hub orders snapshots by version
// itself.
package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/featureflags"
	"github.com/brownout-io/brownout/internal/health"
	"github.com/brownout-io/brownout/internal/hub"
	"github.com/brownout-io/brownout/internal/levels"
	"github.com/brownout-io/brownout/internal/storage"
	"github.com/brownout-io/brownout/sdk/api"
)

// Config tunes the control loop. Zero values take the defaults.
type Config struct {
	// Window is the sliding window of reports per instance (30 s).
	Window time.Duration
	// StaleAfter is how long an instance may stay silent before it leaves
	// the aggregate (30 s).
	StaleAfter time.Duration
	// EvalInterval is how often levels are evaluated and samples taken (1 s).
	EvalInterval time.Duration
	// ForgetAfter drops instances silent and disconnected for this long
	// (10 min), so memory stays bounded as instances come and go.
	ForgetAfter time.Duration
	// MaxServices bounds the number of services (10,000).
	MaxServices int
	// MaxInstances bounds the instances of one service (10,000).
	MaxInstances int
	// MaxOverrides bounds the active overrides (1,000).
	MaxOverrides int
	// MaxComponentBytes bounds the memory spent on the components that
	// instances report (health.ComponentsCost, summed over every instance
	// and every report waiting in an inbox; 16 MiB). Past it, a report's
	// signals still count but its components are dropped, and the
	// instance keeps the components it last had stored.
	MaxComponentBytes int64
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// Follower starts the controller as a follower (a replica over a shared
	// store, until it is told to Lead); otherwise it always leads.
	Follower bool
	// CreateWait bounds how long a follower waits for the leader to create
	// a service someone subscribes to (5 s).
	CreateWait time.Duration
}

func (c *Config) setDefaults() {
	if c.CreateWait <= 0 {
		c.CreateWait = 5 * time.Second
	}
	if c.Window <= 0 {
		c.Window = health.DefaultWindow
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = health.DefaultStaleAfter
	}
	if c.EvalInterval <= 0 {
		c.EvalInterval = time.Second
	}
	if c.ForgetAfter <= 0 {
		c.ForgetAfter = 10 * time.Minute
	}
	if c.MaxServices <= 0 {
		c.MaxServices = 10_000
	}
	if c.MaxInstances <= 0 {
		c.MaxInstances = 10_000
	}
	if c.MaxOverrides <= 0 {
		c.MaxOverrides = 1_000
	}
	if c.MaxComponentBytes <= 0 {
		c.MaxComponentBytes = 16 << 20
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Observer receives the controller's events for metrics. Methods must not
// block.
type Observer interface {
	LevelChanged(service string, level int)
}

type nopObserver struct{}

func (nopObserver) LevelChanged(string, int) {}

// Hub is where committed snapshots go, and what the read models ask about
// the subscribers of a service. *hub.Hub implements it.
type Hub interface {
	// Publish offers a committed snapshot to the service's subscribers
	// without blocking; it drops a snapshot older than one it has.
	Publish(s hub.Snapshot) int
	// Presence lists the instances holding (or recently holding)
	// subscriptions, and the number of live subscriptions.
	Presence(service string) ([]hub.Presence, int)
}

// Controller is the control loop. Create it with New, Load it, then Run it.
type Controller struct {
	cfg     Config
	store   Store
	samples SampleSink
	hub     Hub
	log     *slog.Logger
	obs     Observer

	mu       sync.RWMutex
	services map[string]*service
	// retired holds the last state of retired services, so that one that
	// reports again continues from its stored version. Guarded by mu.
	retired  map[string]brownout.ServiceState
	createMu sync.Mutex

	cfgMu         sync.RWMutex
	global        levels.Thresholds
	svcThresholds map[string]levels.Thresholds
	globalFlags   featureflags.Set
	svcFlags      map[string]featureflags.Set

	// ovSyncMu orders every local change of the overrides (from its
	// entry here to its commit) with every reload of them from the store.
	// A reload whose read a local commit overtook would otherwise undo
	// it: the leader would evaluate without the override it has just
	// committed, and push the level it replaces. Readers take only ovMu.
	// (Configuration needs no such lock: a change holds cfgMu from its
	// commit to its entry, and so does ReloadConfig.)
	ovSyncMu  sync.Mutex
	ovMu      sync.RWMutex
	overrides []brownout.Override // active, by created_at
	// ovReserved counts creations between the limit check and commit, so
	// that concurrent creations cannot pass MaxOverrides together.
	ovReserved int

	watchMu  sync.Mutex
	watchers map[chan struct{}]struct{}

	// epoch is the store's epoch, sent with every state so that a client
	// can tell a reset history (versions starting over) from an old frame.
	epoch string

	// componentBytes is the component budget in use (see
	// Config.MaxComponentBytes); componentsDropped counts reports whose
	// components did not fit.
	componentBytes    atomic.Int64
	componentsDropped atomic.Uint64
	// leading is set while this controller evaluates; fence, when set, is
	// the leadership its state commits are made under (replicated store).
	leading atomic.Bool
	fence   atomic.Pointer[brownout.Fence]
	// folds are a follower's reports not yet shipped to the leader;
	// flushNow asks the replica to ship them at once.
	foldMu   sync.Mutex
	folds    map[string]map[string]*Fold
	flushNow chan struct{}
	// kicked are the services a report may escalate, waiting for Run
	// (see kickService); kick wakes it.
	kickMu sync.Mutex
	kicked []*service
	kick   chan struct{}
	// unsent are notification events the store refused (it was down),
	// written with the next tick's; Tick only.
	unsent []brownout.Event
}

// maxUnsentEvents bounds the events kept while the store refuses them.
const maxUnsentEvents = 1000

// New returns a controller over store that publishes to h. samples may be
// nil (no history).
func New(cfg Config, store Store, samples SampleSink, h Hub, log *slog.Logger, obs Observer) *Controller {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if obs == nil {
		obs = nopObserver{}
	}
	c := &Controller{
		cfg: cfg, store: store, samples: samples, hub: h, log: log, obs: obs,
		services:      map[string]*service{},
		retired:       map[string]brownout.ServiceState{},
		global:        levels.Default(),
		svcThresholds: map[string]levels.Thresholds{},
		globalFlags:   featureflags.Default(),
		svcFlags:      map[string]featureflags.Set{},
		watchers:      map[chan struct{}]struct{}{},
		folds:         map[string]map[string]*Fold{},
		flushNow:      make(chan struct{}, 1),
		kick:          make(chan struct{}, 1),
	}
	c.leading.Store(!cfg.Follower)
	return c
}

// FlushRequested is signalled when a follower has folded reports that
// should reach the leader before the next tick (a service asked for).
func (c *Controller) FlushRequested() <-chan struct{} { return c.flushNow }

// Load reads configuration, services and active overrides from the store.
// Call it once before Run and before serving requests.
func (c *Controller) Load(ctx context.Context) error {
	epoch, err := c.store.Epoch(ctx)
	if err != nil {
		return fmt.Errorf("load epoch: %w", err)
	}
	c.epoch = epoch
	if t, ok, err := c.store.GlobalThresholds(ctx); err != nil {
		return fmt.Errorf("load thresholds: %w", err)
	} else if ok {
		c.global = t
	}
	st, err := c.store.AllServiceThresholds(ctx)
	if err != nil {
		return fmt.Errorf("load service thresholds: %w", err)
	}
	c.svcThresholds = st
	if f, ok, err := c.store.GlobalFlags(ctx); err != nil {
		return fmt.Errorf("load flags: %w", err)
	} else if ok {
		c.globalFlags = f
	}
	sf, err := c.store.AllServiceFlags(ctx)
	if err != nil {
		return fmt.Errorf("load service flags: %w", err)
	}
	c.svcFlags = sf
	now := c.cfg.Now()
	ovs, err := c.store.ActiveOverrides(ctx, now)
	if err != nil {
		return fmt.Errorf("load overrides: %w", err)
	}
	sortOverrides(ovs)
	c.overrides = ovs
	states, err := c.store.LoadServices(ctx)
	if err != nil {
		return fmt.Errorf("load services: %w", err)
	}
	for _, s := range states {
		if !s.RetiredAt.IsZero() {
			c.retired[s.Name] = s
			continue
		}
		svc := c.newService(s.Name)
		svc.state = s
		svc.engine = levels.State{Level: levels.Level(s.ComputedLevel)}
		svc.flags = c.effectiveFlags(s.Name).For(s.Level)
		if ov := c.activeOverride(s.Name, now); ov != nil && ov.ID == s.OverrideID {
			o := *ov
			svc.override = &o
		}
		svc.snapshot = svc.encodeState()
		c.services[s.Name] = svc
		c.obs.LevelChanged(s.Name, s.Level)
		c.hub.Publish(hub.Snapshot{Service: s.Name, Epoch: c.epoch, Version: s.Version, Data: svc.snapshot})
	}
	c.log.Info("controller loaded", "services", len(c.services), "retired", len(c.retired), "overrides", len(ovs))
	// Whatever changed while we were down (an override expired, config
	// edited) is applied with a new version at once.
	return c.evaluateMany(ctx, c.serviceList(), now, func(*service) string { return triggerLoad })
}

// Run evaluates every service each EvalInterval until ctx ends, and
// between ticks the services a report may escalate (see Ingest), at most
// once every EvalInterval/10.
func (c *Controller) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.EvalInterval)
	defer t.Stop()
	spacing := max(c.cfg.EvalInterval/10, time.Millisecond)
	kick, kickAgain := c.kick, (<-chan time.Time)(nil)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Tick(ctx)
		case <-kick:
			c.evaluateKicked(ctx)
			kick, kickAgain = nil, time.After(spacing)
		case <-kickAgain:
			kick, kickAgain = c.kick, nil
		}
	}
}

// kickService asks Run to evaluate svc before the next tick: a report just
// reached a threshold above its level. Kicks are coalesced.
func (c *Controller) kickService(svc *service) {
	if !svc.kicked.CompareAndSwap(false, true) {
		return
	}
	c.kickMu.Lock()
	c.kicked = append(c.kicked, svc)
	c.kickMu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// evaluateKicked evaluates the kicked services, in name order.
func (c *Controller) evaluateKicked(ctx context.Context) {
	c.kickMu.Lock()
	svcs := c.kicked
	c.kicked = nil
	c.kickMu.Unlock()
	for _, svc := range svcs {
		svc.kicked.Store(false)
	}
	if len(svcs) == 0 || !c.Leading() {
		return
	}
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].name < svcs[j].name })
	if err := c.evaluateMany(ctx, svcs, c.cfg.Now(), func(*service) string { return triggerReport }); err != nil {
		c.log.Error("evaluate", "err", err)
	}
}

// Tick runs one evaluation round at the clock's now: expires overrides,
// evaluates every service, takes samples and forgets long-gone instances.
func (c *Controller) Tick(ctx context.Context) {
	now := c.cfg.Now()
	expired := c.expireOverrides(now)
	if !c.Leading() {
		// The leader records expiries and evaluates; a follower only
		// keeps its override cache honest and forgets long-gone instances.
		c.forget(c.serviceList(), now)
		c.notifyWatchers()
		return
	}
	var events []brownout.Event
	for _, o := range expired {
		before, _ := json.Marshal(o)
		if err := c.store.AppendAudit(ctx, brownout.AuditEntry{
			At: now, Actor: brownout.SystemActor, ActorID: brownout.SystemActor, Action: "override.expire", Target: overrideTarget(o), Before: before, After: json.RawMessage("null"),
		}); err != nil {
			c.log.Error("audit override expiry", "err", err)
		}
		if o.Emergency {
			events = append(events, storage.EmergencyEvent(o, false, now))
		}
	}
	svcs := c.serviceList()
	err := c.evaluateMany(ctx, svcs, now, func(svc *service) string {
		for _, o := range expired {
			if o.Matches(svc.name) {
				return triggerExpiry
			}
		}
		return triggerTick
	})
	if err != nil {
		c.log.Error("evaluate", "err", err)
	}
	events = append(c.unsent, append(events, c.staleEvents(svcs, now)...)...)
	if err := c.store.AddEvents(ctx, events); err != nil {
		// Kept for the next tick: these events have no other record.
		c.unsent = events[max(0, len(events)-maxUnsentEvents):]
		c.log.Error("notify: events kept for the next tick", "events", len(c.unsent), "err", err)
	} else {
		c.unsent = nil
	}
	if c.samples != nil {
		for _, svc := range svcs {
			svc.mu.Lock()
			if svc.live > 0 {
				req, errs := svc.window.TakeTotals()
				c.samples.Enqueue(brownout.Sample{
					Service: svc.name, At: now, CPUPercent: svc.signals.CPUPercent, MemoryPercent: svc.signals.MemoryPercent,
					ErrorRate: svc.signals.ErrorRate, Requests: req, Errors: errs, Instances: svc.live,
				})
			}
			svc.mu.Unlock()
		}
	}
	c.forget(svcs, now)
	c.notifyWatchers()
}

// staleEvents returns the events of services whose last live instance
// went silent since the previous tick, or that report again. Only the
// leader ticks this far, so one replica announces each transition.
func (c *Controller) staleEvents(svcs []*service, now time.Time) []brownout.Event {
	var out []brownout.Event
	for _, svc := range svcs {
		if svc.retired.Load() {
			continue
		}
		svc.mu.Lock()
		live := svc.live
		svc.mu.Unlock()
		switch {
		case live > 0 && !svc.wasLive && svc.everLive:
			out = append(out, storage.StaleEvent(svc.name, true, live, now))
		case live == 0 && svc.wasLive:
			out = append(out, storage.StaleEvent(svc.name, false, 0, now))
		}
		svc.wasLive = live > 0
		svc.everLive = svc.everLive || live > 0
	}
	return out
}

// forget folds each service's inbox into its window and drops instances
// silent for longer than ForgetAfter. The leader's evaluation has just
// folded the inboxes; a follower evaluates nothing, so without this its
// inboxes would grow until a view read them (or until full), and that
// read would fold all of it under the lock.
func (c *Controller) forget(svcs []*service, now time.Time) {
	cutoff := now.Add(-c.cfg.ForgetAfter)
	for _, svc := range svcs {
		svc.mu.Lock()
		c.drainLocked(svc)
		forgotten := false
		for _, name := range svc.window.Forget(cutoff) {
			if in := svc.instances[name]; in != nil {
				c.releaseComponents(in.componentCost)
				delete(svc.instances, name)
				forgotten = true
			}
		}
		for name, in := range svc.instances {
			if in.lastSeen.Before(cutoff) {
				if _, ok := svc.window.LastSeen(name); !ok {
					c.releaseComponents(in.componentCost)
					delete(svc.instances, name)
					forgotten = true
				}
			}
		}
		if forgotten {
			svc.countInstancesLocked()
		}
		svc.mu.Unlock()
	}
}

// Ingest queues a validated report for its service's window, creating
// the service on its first report. Reports wait in a sharded inbox under
// short locks and are folded into the window before every evaluation and
// read, so that thousands of reporting connections never convoy on the
// lock the evaluation needs.
func (c *Controller) Ingest(ctx context.Context, r health.Report) error {
	if !c.Leading() {
		// For the leader, which counts it once this replica ships its
		// folds; the local window only feeds this replica's own views.
		now := c.cfg.Now()
		c.foldMu.Lock()
		err := c.foldLocked(r, now)
		c.foldMu.Unlock()
		if err != nil {
			return err
		}
		c.mu.RLock()
		svc := c.services[r.Service]
		c.mu.RUnlock()
		if svc != nil {
			// Components are the leader's to keep: this replica's own
			// view shows signals only. A full local inbox costs only that
			// view.
			r.Components = nil
			_ = c.inbox(svc, r, now, 0)
		}
		return nil
	}
	svc, err := c.service(ctx, r.Service, true)
	if err != nil {
		return err
	}
	if svc.nInstances.Load() >= int64(c.cfg.MaxInstances) {
		svc.mu.Lock()
		_, ok := svc.instances[r.Instance]
		svc.mu.Unlock()
		if !ok {
			return brownout.Errorf(brownout.EINVALID, "service %q already has %d instances, the limit per service (--max-instances)", r.Service, c.cfg.MaxInstances)
		}
	}
	var cost int64
	if len(r.Components) > 0 {
		cost = health.ComponentsCost(r.Components)
		if !c.reserveComponents(cost) {
			r.Components, cost = nil, 0
			c.componentsDropped.Add(1)
		}
	}
	if err := c.inbox(svc, r, c.cfg.Now(), cost); err != nil {
		return err
	}
	if svc.escalates(r) {
		c.kickService(svc)
	}
	return nil
}

// inbox queues a report for svc's window; cost is the component budget it
// holds (released when the window takes it, or here when refused).
func (c *Controller) inbox(svc *service, r health.Report, at time.Time, cost int64) error {
	sh := &svc.inbox[shardOf(r.Instance)]
	sh.mu.Lock()
	if len(sh.reports) >= maxInboxPerShard {
		sh.mu.Unlock()
		c.releaseComponents(cost)
		return brownout.Errorf(brownout.ETHROTTLED, "the controller is behind on reports for %q; retry shortly", r.Service)
	}
	sh.reports = append(sh.reports, inboxReport{r: r, at: at, cost: cost})
	sh.mu.Unlock()
	return nil
}

// reserveComponents takes n bytes of the component budget, or reports
// that they do not fit.
func (c *Controller) reserveComponents(n int64) bool {
	for {
		used := c.componentBytes.Load()
		if used+n > c.cfg.MaxComponentBytes {
			return false
		}
		if c.componentBytes.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

func (c *Controller) releaseComponents(n int64) {
	if n != 0 {
		c.componentBytes.Add(-n)
	}
}

// ComponentBudget returns the component bytes in use and the reports whose
// components were dropped because the budget was spent.
func (c *Controller) ComponentBudget() (used int64, dropped uint64) {
	return c.componentBytes.Load(), c.componentsDropped.Load()
}

// Inbox sizing: reports wait at most one evaluation interval; the bound
// only matters when evaluation stalls, and then it pushes back (429)
// instead of growing without limit.
const (
	inboxShards      = 16
	maxInboxPerShard = 32768
)

type inboxReport struct {
	r    health.Report
	at   time.Time
	cost int64 // component budget reserved by r.Components
}

type inboxShard struct {
	mu      sync.Mutex
	reports []inboxReport
	_       [40]byte // keep shards' locks on separate cache lines
}

func shardOf(instance string) int {
	h := uint32(2166136261)
	for i := 0; i < len(instance); i++ {
		h ^= uint32(instance[i])
		h *= 16777619
	}
	return int(h % inboxShards)
}

// drainLocked folds the inbox into the window; svc.mu held.
func (c *Controller) drainLocked(svc *service) {
	added := false
	for i := range svc.inbox {
		sh := &svc.inbox[i]
		sh.mu.Lock()
		batch := sh.reports
		sh.reports = svc.spare[i][:0]
		sh.mu.Unlock()
		for _, ir := range batch {
			in := svc.instances[ir.r.Instance]
			if in == nil {
				if len(svc.instances) >= c.cfg.MaxInstances {
					c.releaseComponents(ir.cost)
					continue // refused at Ingest once the set is published
				}
				in = &instance{}
				svc.instances[ir.r.Instance] = in
				added = true
			}
			if ir.r.Components != nil {
				// The window keeps the newest components: the old ones'
				// budget is free again.
				c.releaseComponents(in.componentCost)
				in.componentCost = ir.cost
			}
			if ir.at.After(in.lastSeen) {
				in.lastSeen = ir.at
			}
			svc.window.Add(ir.r, ir.at)
		}
		clear(batch)
		svc.spare[i] = batch[:0]
	}
	if added {
		svc.countInstancesLocked()
	}
}

// Triggers of an evaluation.
const (
	triggerTick     = "tick"
	triggerReport   = "report"
	triggerLoad     = "load"
	triggerOverride = "override"
	triggerExpiry   = "expiry"
	triggerConfig   = "config"
	triggerCreate   = "create"
)

// pending is a computed state change waiting to be made durable and
// published. Its service's commitMu is held from prepare to finish.
type pending struct {
	svc        *service
	trigger    string
	next       brownout.ServiceState
	changes    []brownout.LevelChange
	flags      map[string]bool
	override   *brownout.Override
	detail     string
	prevEngine levels.State
	oldLevel   int
}

// evaluate evaluates one service; see evaluateMany.
func (c *Controller) evaluate(ctx context.Context, svc *service, now time.Time, trigger string) error {
	return c.evaluateMany(ctx, []*service{svc}, now, func(*service) string { return trigger })
}

// evaluateMany computes the next state of each service and, for those
// whose subscribers would see a change, saves every new state in one
// transaction (one fsync however many services a global override
// touches), then publishes them. Nothing is published that is not durable:
// on a store error every service keeps its previous state and the next
// tick tries again. svcs must be in name order (serviceList's), the order
// in which commit locks are taken.
func (c *Controller) evaluateMany(ctx context.Context, svcs []*service, now time.Time, trigger func(*service) string) error {
	return c.commitWith(ctx, svcs, now, trigger, nil)
}

// commitHooks let an operator change be made durable in the same
// transaction as the states it causes.
type commitHooks struct {
	// apply makes the change visible to prepare; it runs with the commit
	// locks of every affected service held, so no other evaluation of
	// those services can see it before it is durable.
	apply func()
	// save stores the change and the batch (which may be empty) in one
	// transaction.
	save func(batch []brownout.StateChange) error
	// undo reverts apply when save fails.
	undo func()
}

// commitWith is evaluateMany with an operator change saved alongside. It
// publishes what it committed after releasing every commit lock.
func (c *Controller) commitWith(ctx context.Context, svcs []*service, now time.Time, trigger func(*service) string, h *commitHooks) error {
	snaps, err := c.commit(ctx, svcs, now, trigger, h)
	for _, s := range snaps {
		c.hub.Publish(s)
	}
	if err == nil && (len(snaps) > 0 || h != nil) {
		c.notifyWatchers()
	}
	return err
}

// commit computes and saves; it returns the snapshots to publish. A
// follower computes nothing: it saves only the operator's change, which the
// leader evaluates once the feed announces it.
func (c *Controller) commit(ctx context.Context, svcs []*service, now time.Time, trigger func(*service) string, h *commitHooks) ([]hub.Snapshot, error) {
	if !c.Leading() {
		if h == nil {
			return nil, nil
		}
		h.apply()
		if err := h.save(nil); err != nil {
			h.undo()
			return nil, err
		}
		return nil, nil
	}
	ctx = c.fenced(ctx)
	for _, svc := range svcs {
		svc.commitMu.Lock()
	}
	defer func() {
		for _, svc := range svcs {
			svc.commitMu.Unlock()
		}
	}()
	if h != nil {
		h.apply()
	}
	var ps []*pending
	for _, svc := range svcs {
		if p := c.prepare(svc, now, trigger(svc)); p != nil {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 && h == nil {
		return nil, nil
	}
	batch := make([]brownout.StateChange, len(ps))
	for i, p := range ps {
		batch[i] = brownout.StateChange{State: p.next, Changes: p.changes}
	}
	var err error
	if h != nil {
		err = h.save(batch)
	} else {
		err = c.store.SaveServiceStates(ctx, batch)
	}
	if err != nil {
		for _, p := range ps {
			p.svc.mu.Lock()
			p.svc.engine = p.prevEngine
			p.svc.mu.Unlock()
		}
		if errors.Is(err, brownout.ErrFenced) {
			c.log.Warn("deposed: another replica leads; following")
			c.Follow()
		}
		if h != nil {
			h.undo()
			return nil, err
		}
		return nil, fmt.Errorf("save state of %d services: %w", len(ps), err)
	}
	snaps := make([]hub.Snapshot, len(ps))
	for i, p := range ps {
		// A shared store allocates versions in the commit.
		p.next.Version = batch[i].State.Version
		snaps[i] = c.finish(p)
	}
	return snaps, nil
}

// prepare computes a service's next state; nil when nothing a subscriber
// sees has changed. The caller holds svc.commitMu.
func (c *Controller) prepare(svc *service, now time.Time, trigger string) *pending {
	th := c.thresholdsFor(svc.name)
	eff := c.effectiveFlags(svc.name)
	ov := c.activeOverride(svc.name, now)

	if svc.retired.Load() {
		return nil
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	c.drainLocked(svc)
	obs, live := svc.window.Observe(now)
	sig := obs.Window
	svc.signals, svc.live = sig, live
	prevEngine := svc.engine
	eng, dec := levels.EvaluateObserved(svc.engine, obs, live > 0, th, now)
	svc.engine = eng
	svc.setBar(th, eng.Level)
	old := svc.state
	level := int(eng.Level)
	ovID := ""
	if ov != nil {
		level = ov.Level
		ovID = ov.ID
	}
	flags := eff.For(level)
	changed := level != old.Level || int(eng.Level) != old.ComputedLevel || ovID != old.OverrideID || !maps.Equal(flags, svc.flags)
	if !changed {
		return nil
	}
	next := old
	next.Version = old.Version + 1
	if c.fence.Load() != nil {
		next.Version = 0 // the shared store allocates it in the commit
	}
	next.Level = level
	next.ComputedLevel = int(eng.Level)
	next.OverrideID = ovID
	next.CalmSince = eng.CalmSince
	next.ChangedAt = now
	var changes []brownout.LevelChange
	var cause, detail string
	switch {
	case ovID != old.OverrideID:
		cause = brownout.CauseOverride
		if trigger == triggerExpiry && ov == nil {
			cause = brownout.CauseExpiry
		}
		if ov != nil {
			detail = fmt.Sprintf("override %s by %s: %s", ov.ID, ov.Actor, ov.Reason)
		} else if cause == brownout.CauseExpiry {
			detail = "override expired; computed level applies"
		} else {
			detail = "override cleared; computed level applies"
		}
	case dec != nil:
		cause = brownout.CauseSignal
		detail = describe(dec)
	case level != old.Level || int(eng.Level) != old.ComputedLevel:
		cause = brownout.CauseSignal
	default:
		cause = "config"
		detail = "flag set changed"
	}
	if trigger == triggerCreate {
		cause, detail = "initial", "service created"
	}
	next.Cause = cause
	next.Detail = detail
	if level != old.Level && trigger != triggerCreate {
		inputs := api.LevelChangeInputs{Signals: sig, Latest: obs.Latest, Instances: live, ComputedLevel: eng.Level, Decision: dec, Override: ov}
		if dec == nil {
			t := api.Thresholds(th)
			inputs.Thresholds = &t
		}
		if cause != brownout.CauseSignal {
			inputs.PreviousOverrideID = old.OverrideID
		}
		raw, _ := json.Marshal(inputs)
		changes = append(changes, brownout.LevelChange{
			Service: svc.name, Kind: brownout.KindEffective, FromLevel: old.Level, ToLevel: level,
			At: now, Cause: cause, Version: next.Version, Inputs: raw,
		})
	}
	if dec != nil && (level == old.Level || cause != brownout.CauseSignal) {
		// The computed level moved but an override hides it.
		raw, _ := json.Marshal(map[string]any{"decision": dec, "instances": live, "override_id": ovID})
		changes = append(changes, brownout.LevelChange{
			Service: svc.name, Kind: brownout.KindComputed, FromLevel: int(dec.From), ToLevel: int(dec.To),
			At: now, Cause: brownout.CauseSignal, Version: next.Version, Inputs: raw,
		})
	}
	return &pending{
		svc: svc, trigger: trigger, next: next, changes: changes, flags: flags,
		override: ov, detail: detail, prevEngine: prevEngine, oldLevel: old.Level,
	}
}

// finish makes a saved state current and returns its snapshot.
func (c *Controller) finish(p *pending) hub.Snapshot {
	svc := p.svc
	svc.mu.Lock()
	svc.state = p.next
	svc.flags = p.flags
	svc.detail = p.detail
	if p.override != nil {
		o := *p.override
		svc.override = &o
	} else {
		svc.override = nil
	}
	svc.snapshot = svc.encodeState()
	snap := hub.Snapshot{Service: svc.name, Epoch: svc.epoch, Version: p.next.Version, Data: svc.snapshot}
	svc.mu.Unlock()

	level := p.next.Level
	if level != p.oldLevel || p.trigger == triggerCreate {
		c.obs.LevelChanged(svc.name, level)
	}
	if level != p.oldLevel && p.trigger != triggerCreate {
		c.log.Info("level changed", "service", svc.name, "from", levels.Level(p.oldLevel).String(), "to", levels.Level(level).String(),
			"version", p.next.Version, "cause", p.next.Cause, "detail", p.detail)
	}
	return snap
}

// describe says why a level changed, in the units the dashboard shows
// signals in: CPU and memory as percentages with one decimal, the error
// rate as a percentage with two ("error_rate 10.32% ≥ 10.00%").
func describe(d *levels.Decision) string {
	t := d.Trigger
	if t.Kind == "enter" {
		where := ""
		if t.Source == levels.SourceLatest {
			where = " in the latest reports"
		}
		return fmt.Sprintf("%s %s ≥ %s%s (enter %s)", t.Signal, signalText(t.Signal, t.Value), signalText(t.Signal, t.Threshold), where, t.Level)
	}
	return fmt.Sprintf("below %s exit for %s (closest: %s %s < %s)", t.Level, time.Duration(d.CalmFor).Round(time.Second), t.Signal, signalText(t.Signal, t.Value), signalText(t.Signal, t.Threshold))
}

func signalText(signal string, v float64) string {
	if signal == "error_rate" {
		return strconv.FormatFloat(v*100, 'f', 2, 64) + "%"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + "%"
}

// EnsureService creates the named service (valid name) unless it exists,
// so that its first snapshot is committed and published before anyone
// subscribes to it.
func (c *Controller) EnsureService(ctx context.Context, name string) error {
	_, err := c.service(ctx, name, true)
	return err
}

// service returns the named service, creating (and persisting) it when
// create is set. Names must already be valid.
func (c *Controller) service(ctx context.Context, name string, create bool) (*service, error) {
	c.mu.RLock()
	svc := c.services[name]
	c.mu.RUnlock()
	if svc != nil || !create {
		if svc == nil {
			return nil, brownout.Errorf(brownout.ENOTFOUND, "service %q not found", name)
		}
		return svc, nil
	}
	if !c.Leading() {
		// Only the leader commits states: ask it through the folds, and
		// wait for the feed to announce the new service.
		c.foldMu.Lock()
		err := c.foldLocked(health.Report{Service: name}, c.cfg.Now())
		c.foldMu.Unlock()
		if err != nil {
			return nil, err
		}
		select {
		case c.flushNow <- struct{}{}:
		default:
		}
		return c.waitService(ctx, name, c.cfg.CreateWait)
	}
	c.createMu.Lock()
	defer c.createMu.Unlock()
	c.mu.RLock()
	svc = c.services[name]
	n := len(c.services)
	c.mu.RUnlock()
	if svc != nil {
		return svc, nil
	}
	if n >= c.cfg.MaxServices {
		return nil, brownout.Errorf(brownout.EINVALID, "the controller already has %d services, the limit (--max-services)", c.cfg.MaxServices)
	}
	now := c.cfg.Now()
	svc = c.newService(name)
	svc.state = brownout.ServiceState{Name: name, CreatedAt: now, Level: -1, ComputedLevel: 0}
	c.mu.RLock()
	old, revived := c.retired[name]
	c.mu.RUnlock()
	if revived {
		// Its versions continue above the stored one; Level -1 records the
		// revival as a level change.
		svc.state.Version, svc.state.CreatedAt = old.Version, old.CreatedAt
	}
	if err := c.evaluate(ctx, svc, now, triggerCreate); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.services[name] = svc
	delete(c.retired, name)
	c.mu.Unlock()
	if revived {
		c.log.Info("retired service reported again: revived", "service", name, "version", svc.state.Version)
	} else {
		c.log.Info("service created", "service", name)
	}
	return svc, nil
}

func (c *Controller) newService(name string) *service {
	svc := &service{
		name:      name,
		epoch:     c.epoch,
		window:    health.NewWindow(c.cfg.Window, c.cfg.StaleAfter),
		instances: map[string]*instance{},
	}
	return svc
}

func (c *Controller) serviceList() []*service {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*service, 0, len(c.services))
	for _, s := range c.services {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (c *Controller) thresholdsFor(service string) levels.Thresholds {
	c.cfgMu.RLock()
	defer c.cfgMu.RUnlock()
	if t, ok := c.svcThresholds[service]; ok {
		return t
	}
	return c.global
}

func (c *Controller) effectiveFlags(service string) featureflags.Effective {
	c.cfgMu.RLock()
	defer c.cfgMu.RUnlock()
	return featureflags.Merge(c.globalFlags, c.svcFlags[service])
}

func (c *Controller) activeOverride(service string, now time.Time) *brownout.Override {
	c.ovMu.RLock()
	defer c.ovMu.RUnlock()
	for i := len(c.overrides) - 1; i >= 0; i-- {
		o := &c.overrides[i]
		if o.Active(now) && o.Matches(service) {
			cp := *o
			return &cp
		}
	}
	return nil
}

func (c *Controller) expireOverrides(now time.Time) []brownout.Override {
	c.ovMu.Lock()
	defer c.ovMu.Unlock()
	var expired []brownout.Override
	kept := c.overrides[:0]
	for _, o := range c.overrides {
		if o.Active(now) {
			kept = append(kept, o)
		} else {
			expired = append(expired, o)
		}
	}
	c.overrides = kept
	return expired
}

func sortOverrides(ovs []brownout.Override) {
	sort.SliceStable(ovs, func(i, j int) bool {
		if !ovs[i].CreatedAt.Equal(ovs[j].CreatedAt) {
			return ovs[i].CreatedAt.Before(ovs[j].CreatedAt)
		}
		return ovs[i].ID < ovs[j].ID
	})
}

func overrideTarget(o brownout.Override) string {
	return "override:" + o.ID + " service:" + o.Service
}

// newID returns a random identifier with a prefix, e.g. "ovr_3f9a…".
func newID(prefix string) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return prefix + hex.EncodeToString(b[:])
}

// Watch returns a channel that receives (coalesced) whenever any service's
// state or signals change, and a function that stops the watch.
func (c *Controller) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	c.watchMu.Lock()
	c.watchers[ch] = struct{}{}
	c.watchMu.Unlock()
	return ch, func() {
		c.watchMu.Lock()
		delete(c.watchers, ch)
		c.watchMu.Unlock()
	}
}

func (c *Controller) notifyWatchers() {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	for ch := range c.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
