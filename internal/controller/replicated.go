package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/health"
	"github.com/brownout-io/brownout/internal/hub"
	"github.com/brownout-io/brownout/internal/levels"
)

// Leading and following. A controller over a single-writer store (SQLite)
// always leads with no fence. Over a store shared by replicas, exactly one
// replica leads at a time: it evaluates, and its state commits carry its
// fence so that the store refuses them once another replica has taken
// over. A follower evaluates nothing and commits no state: it stores the
// operator changes made through it (the leader evaluates them when the
// change feed announces them), folds the reports it receives for the
// leader, and publishes the states the feed announces, exactly as the
// leader publishes its own.

// Leading reports whether this controller evaluates levels.
func (c *Controller) Leading() bool { return c.leading.Load() }

// Follow makes the controller a follower. Safe to call at any time; a
// commit in flight finishes, fenced.
func (c *Controller) Follow() {
	if c.leading.Swap(false) {
		c.log.Info("following")
	}
}

// Lead makes the controller the leader under f: it re-reads everything
// committed (another replica led until now), then evaluates, its state
// commits fenced by f. The store allocates versions.
func (c *Controller) Lead(ctx context.Context, f brownout.Fence) error {
	c.fence.Store(&f)
	if err := c.Resync(ctx); err != nil {
		return fmt.Errorf("resync before leading: %w", err)
	}
	// The windows start over: what this replica received as a follower
	// it shipped as partials, which the leader merges from now on, so
	// keeping it would count it twice.
	for _, svc := range c.serviceList() {
		svc.mu.Lock()
		svc.window = health.NewWindow(c.cfg.Window, c.cfg.StaleAfter)
		for i := range svc.inbox {
			sh := &svc.inbox[i]
			sh.mu.Lock()
			for _, ir := range sh.reports {
				c.releaseComponents(ir.cost)
			}
			clear(sh.reports)
			sh.reports = sh.reports[:0]
			sh.mu.Unlock()
		}
		svc.mu.Unlock()
	}
	c.foldMu.Lock()
	c.folds = map[string]map[string]*Fold{}
	c.foldMu.Unlock()
	c.leading.Store(true)
	c.log.Info("leading", "term", f.Term)
	return nil
}

// fenced returns ctx with the leader's fence, if it has one.
func (c *Controller) fenced(ctx context.Context) context.Context {
	if f := c.fence.Load(); f != nil {
		return brownout.WithFence(ctx, *f)
	}
	return ctx
}

// Resync re-reads configuration, active overrides and every service's
// committed state, and publishes every state newer than the one held: what
// a replica does when it may have missed changes.
func (c *Controller) Resync(ctx context.Context) error {
	if err := c.ReloadConfig(ctx); err != nil {
		return err
	}
	if err := c.ReloadOverrides(ctx); err != nil {
		return err
	}
	states, err := c.store.LoadServices(ctx)
	if err != nil {
		return fmt.Errorf("load services: %w", err)
	}
	for _, st := range states {
		c.ApplyState(st)
	}
	return nil
}

// ReloadConfig re-reads thresholds and flag sets from the store. It holds
// cfgMu from its first read to the swap, as a local change holds it from
// its commit to its entry, so that neither undoes the other.
func (c *Controller) ReloadConfig(ctx context.Context) error {
	c.cfgMu.Lock()
	defer c.cfgMu.Unlock()
	global, gok, err := c.store.GlobalThresholds(ctx)
	if err != nil {
		return fmt.Errorf("load thresholds: %w", err)
	}
	st, err := c.store.AllServiceThresholds(ctx)
	if err != nil {
		return fmt.Errorf("load service thresholds: %w", err)
	}
	flags, fok, err := c.store.GlobalFlags(ctx)
	if err != nil {
		return fmt.Errorf("load flags: %w", err)
	}
	sf, err := c.store.AllServiceFlags(ctx)
	if err != nil {
		return fmt.Errorf("load service flags: %w", err)
	}
	if gok {
		c.global = global
	} else {
		c.global = levels.Default()
	}
	if fok {
		c.globalFlags = flags
	}
	c.svcThresholds, c.svcFlags = st, sf
	return nil
}

// ReloadOverrides re-reads the active overrides from the store.
func (c *Controller) ReloadOverrides(ctx context.Context) error {
	return c.ReloadOverridesWith(ctx, c.store.ActiveOverrides)
}

// ReloadOverridesWith is ReloadOverrides with the read given: load returns
// the overrides active at now, as the store's ActiveOverrides does, so
// that a caller may read them in the same round trip as something else.
// No override is created or cleared here from the read to the swap.
func (c *Controller) ReloadOverridesWith(ctx context.Context, load func(ctx context.Context, now time.Time) ([]brownout.Override, error)) error {
	c.ovSyncMu.Lock()
	defer c.ovSyncMu.Unlock()
	ovs, err := load(ctx, c.cfg.Now())
	if err != nil {
		return fmt.Errorf("load overrides: %w", err)
	}
	sortOverrides(ovs)
	c.ovMu.Lock()
	c.overrides = ovs
	c.ovMu.Unlock()
	return nil
}

// Reevaluate evaluates every service now, when leading: after the feed
// announced a configuration or override change made through another
// replica.
func (c *Controller) Reevaluate(ctx context.Context, trigger string) error {
	if !c.Leading() {
		return nil
	}
	if trigger != triggerOverride {
		trigger = triggerConfig
	}
	return c.reevaluateAll(ctx, trigger, "")
}

// Triggers a replica passes to Reevaluate.
const (
	TriggerConfig   = triggerConfig
	TriggerOverride = triggerOverride
)

// ApplyState makes a committed state current and publishes its snapshot,
// unless the controller already holds that version or a newer one (its own
// commits come back through the feed). It is how a follower learns of
// every change, and how any replica catches up.
//
// A retired state retires the service here too, as RetireService does on
// the replica that retired it, unless the service has a newer state (it
// was revived since).
func (c *Controller) ApplyState(st brownout.ServiceState) {
	if !st.RetiredAt.IsZero() {
		c.applyRetired(st)
		return
	}
	c.mu.RLock()
	svc := c.services[st.Name]
	c.mu.RUnlock()
	for svc == nil {
		if c.applyNew(st) {
			return
		}
		c.mu.RLock()
		svc = c.services[st.Name]
		c.mu.RUnlock()
	}
	var ov *brownout.Override
	if st.OverrideID != "" {
		ov = c.overrideByID(st.OverrideID)
	}
	flags := c.effectiveFlags(st.Name).For(st.Level)
	svc.mu.Lock()
	if st.Version <= svc.state.Version && svc.state.Level >= 0 {
		svc.mu.Unlock()
		return
	}
	old := svc.state.Level
	snap := c.setStateLocked(svc, st, flags, ov)
	svc.mu.Unlock()
	c.hub.Publish(snap)
	if old != st.Level {
		c.obs.LevelChanged(st.Name, st.Level)
	}
	c.notifyWatchers()
}

// applyNew applies the state of a service this controller does not know
// and reports true, unless another call created it meanwhile. The service
// joins the service list only once its first snapshot is published, so
// that a subscriber waiting for it (waitService) never finds it without
// one.
func (c *Controller) applyNew(st brownout.ServiceState) bool {
	c.createMu.Lock()
	defer c.createMu.Unlock()
	c.mu.RLock()
	known := c.services[st.Name] != nil
	c.mu.RUnlock()
	if known {
		return false
	}
	var ov *brownout.Override
	if st.OverrideID != "" {
		ov = c.overrideByID(st.OverrideID)
	}
	svc := c.newService(st.Name)
	svc.mu.Lock()
	snap := c.setStateLocked(svc, st, c.effectiveFlags(st.Name).For(st.Level), ov)
	svc.mu.Unlock()
	c.hub.Publish(snap)
	c.mu.Lock()
	c.services[st.Name] = svc
	delete(c.retired, st.Name) // revived elsewhere
	c.mu.Unlock()
	c.obs.LevelChanged(st.Name, st.Level)
	c.notifyWatchers()
	return true
}

// setStateLocked makes st svc's current state and returns its snapshot;
// svc.mu held.
func (c *Controller) setStateLocked(svc *service, st brownout.ServiceState, flags map[string]bool, ov *brownout.Override) hub.Snapshot {
	svc.state = st
	svc.engine = levels.State{Level: levels.Level(st.ComputedLevel), CalmSince: st.CalmSince}
	svc.flags = flags
	svc.override = ov
	svc.detail = st.Detail
	svc.snapshot = svc.encodeState()
	return hub.Snapshot{Service: svc.name, Epoch: svc.epoch, Version: st.Version, Data: svc.snapshot}
}

// applyRetired retires a service another replica retired: it leaves the
// service list, the dashboard and the metrics here too, and a leader stops
// evaluating it.
func (c *Controller) applyRetired(st brownout.ServiceState) {
	c.createMu.Lock() // no creation or revival of this name meanwhile
	defer c.createMu.Unlock()
	c.mu.RLock()
	svc := c.services[st.Name]
	c.mu.RUnlock()
	if svc == nil {
		c.mu.Lock()
		if old, ok := c.retired[st.Name]; !ok || old.Version <= st.Version {
			c.retired[st.Name] = st
		}
		c.mu.Unlock()
		return
	}
	svc.commitMu.Lock() // no evaluation commits for it meanwhile
	defer svc.commitMu.Unlock()
	svc.mu.Lock()
	newer := svc.state.Version > st.Version
	svc.mu.Unlock()
	if newer || svc.retired.Load() {
		return
	}
	svc.retired.Store(true)
	c.mu.Lock()
	delete(c.services, st.Name)
	c.retired[st.Name] = st
	c.mu.Unlock()
	if r, ok := c.obs.(retireObserver); ok {
		r.ServiceRetired(st.Name)
	}
	c.log.Info("service retired by another replica", "service", st.Name, "version", st.Version)
	c.notifyWatchers()
}

func (c *Controller) overrideByID(id string) *brownout.Override {
	c.ovMu.RLock()
	defer c.ovMu.RUnlock()
	for i := range c.overrides {
		if c.overrides[i].ID == id {
			o := c.overrides[i]
			return &o
		}
	}
	return nil
}

// Report folds: what a follower keeps of the reports it receives between
// two flushes, per service and instance.

// Fold is one instance's reports of one tick folded into one: mean CPU and
// memory, summed requests and errors, the newest time and components.
type Fold struct {
	Instance   string          `json:"i"`
	N          int             `json:"n"`
	CPUSum     float64         `json:"c"`
	MemSum     float64         `json:"m"`
	Requests   float64         `json:"r"`
	Errors     float64         `json:"e"`
	RateOnly   bool            `json:"q,omitempty"`
	At         time.Time       `json:"t"`
	Components json.RawMessage `json:"k,omitempty"`
}

func (f *Fold) add(r health.Report, at time.Time) {
	f.N++
	f.CPUSum += *r.CPUPercent
	f.MemSum += *r.MemoryPercent
	if r.ErrorRate != nil {
		f.Requests++
		f.Errors += *r.ErrorRate
		f.RateOnly = true
	} else {
		f.Requests += float64(r.Requests)
		f.Errors += float64(r.Errors)
	}
	if r.At != nil && r.At.Before(at) {
		at = *r.At
	}
	if at.After(f.At) {
		f.At = at
	}
	if r.Components != nil {
		f.Components, _ = json.Marshal(r.Components)
	}
}

// report turns the fold back into one report for the leader's window.
func (f *Fold) report(service string) health.Report {
	n := float64(max(f.N, 1))
	cpu, mem := f.CPUSum/n, f.MemSum/n
	at := f.At
	r := health.Report{Service: service, Instance: f.Instance, CPUPercent: &cpu, MemoryPercent: &mem, At: &at}
	if f.RateOnly {
		rate := 0.0
		if f.Requests > 0 {
			rate = math.Min(1, f.Errors/f.Requests)
		}
		r.ErrorRate = &rate
	} else {
		r.Requests, r.Errors = int64(math.Round(f.Requests)), int64(math.Round(f.Errors))
	}
	if len(f.Components) > 0 {
		_ = json.Unmarshal(f.Components, &r.Components)
	}
	return r
}

// foldLocked adds a report to the follower's folds; c.foldMu held.
func (c *Controller) foldLocked(r health.Report, at time.Time) error {
	byInst := c.folds[r.Service]
	if byInst == nil {
		if len(c.folds) >= c.cfg.MaxServices {
			return brownout.Errorf(brownout.EINVALID, "the controller already has %d services, the most allowed", c.cfg.MaxServices)
		}
		byInst = map[string]*Fold{}
		c.folds[r.Service] = byInst
	}
	if r.Instance == "" {
		return nil // a service asked for, no report
	}
	f := byInst[r.Instance]
	if f == nil {
		if len(byInst) >= c.cfg.MaxInstances {
			return brownout.Errorf(brownout.EINVALID, "service %q already has %d instances, the most allowed", r.Service, c.cfg.MaxInstances)
		}
		f = &Fold{Instance: r.Instance}
		byInst[r.Instance] = f
	}
	f.add(r, at)
	return nil
}

// TakeFolds returns the reports folded since the last call, one encoded
// body per service, and starts over. A follower's replica ships them to
// the store each tick; the leader merges them.
func (c *Controller) TakeFolds() map[string][]byte {
	c.foldMu.Lock()
	folds := c.folds
	c.folds = map[string]map[string]*Fold{}
	c.foldMu.Unlock()
	if len(folds) == 0 {
		return nil
	}
	out := make(map[string][]byte, len(folds))
	for svc, byInst := range folds {
		list := make([]*Fold, 0, len(byInst))
		for _, f := range byInst {
			list = append(list, f)
		}
		b, err := json.Marshal(list)
		if err != nil {
			continue // only plain types
		}
		out[svc] = b
	}
	return out
}

// MergePartials adds other replicas' folded reports to the windows, when
// leading, creating the services they name. A body that does not decode
// is skipped and logged: it cannot have come from this code.
func (c *Controller) MergePartials(ctx context.Context, parts []brownout.Partial) error {
	var errs []error
	for _, p := range parts {
		var folds []Fold
		if err := json.Unmarshal(p.Body, &folds); err != nil {
			c.log.Warn("undecodable report partial", "replica", p.Replica, "service", p.Service, "err", err)
			continue
		}
		if !brownout.ValidName(p.Service) {
			continue
		}
		svc, err := c.service(ctx, p.Service, true)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for i := range folds {
			f := &folds[i]
			if !brownout.ValidName(f.Instance) || f.N <= 0 {
				continue
			}
			r := f.report(p.Service)
			var cost int64
			if len(r.Components) > 0 {
				cost = health.ComponentsCost(r.Components)
				if !c.reserveComponents(cost) {
					r.Components, cost = nil, 0
					c.componentsDropped.Add(1)
				}
			}
			_ = c.inbox(svc, r, f.At, cost) // a full inbox pushes back on this replica's reporters, not on others'

		}
	}
	return errors.Join(errs...)
}

// waitService waits until the named service is known here (a follower
// learns of a new service from the feed once the leader has created it).
func (c *Controller) waitService(ctx context.Context, name string, d time.Duration) (*service, error) {
	ch, stop := c.Watch()
	defer stop()
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		c.mu.RLock()
		svc := c.services[name]
		c.mu.RUnlock()
		if svc != nil {
			return svc, nil
		}
		select {
		case <-ch:
		case <-t.C:
			return nil, brownout.Errorf(brownout.EUNAVAILABLE, "service %q is not known yet and no leader created it within %s; retry shortly", name, d)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// HasVersion reports whether the controller already holds version (or a
// newer one) of service, so that a feed's echo of a commit costs no read.
func (c *Controller) HasVersion(service string, version uint64) bool {
	c.mu.RLock()
	svc := c.services[service]
	c.mu.RUnlock()
	if svc == nil {
		return false
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	return svc.state.Level >= 0 && svc.state.Version >= version
}
