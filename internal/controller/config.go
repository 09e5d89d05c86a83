package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/featureflags"
	"github.com/brownout-io/brownout/internal/levels"
	"github.com/brownout-io/brownout/sdk/api"
)

// Limits on overrides.
const (
	MaxReasonLen   = 500
	MaxOverrideTTL = 30 * 24 * time.Hour
	MinOverrideTTL = time.Second
)

func audit(at time.Time, actor brownout.Actor, action, target string, before, after any) brownout.AuditEntry {
	b, _ := json.Marshal(before)
	a, _ := json.Marshal(after)
	return brownout.AuditEntry{At: at, Actor: actor.Name, ActorID: actor.ID, Action: action, Target: target, Before: b, After: a}
}

// GlobalThresholds returns the global default thresholds.
func (c *Controller) GlobalThresholds() levels.Thresholds {
	c.cfgMu.RLock()
	defer c.cfgMu.RUnlock()
	return c.global
}

// ServiceThresholds returns a service's own thresholds; ok is false when it
// uses the global set (which is then returned).
func (c *Controller) ServiceThresholds(service string) (levels.Thresholds, bool) {
	c.cfgMu.RLock()
	defer c.cfgMu.RUnlock()
	if t, ok := c.svcThresholds[service]; ok {
		return t, true
	}
	return c.global, false
}

// SetGlobalThresholds validates, stores (with audit) and applies t.
func (c *Controller) SetGlobalThresholds(ctx context.Context, t levels.Thresholds, actor brownout.Actor) error {
	if err := t.Validate(); err != nil {
		return err
	}
	c.cfgMu.Lock()
	before := c.global
	err := c.store.PutGlobalThresholds(ctx, t, audit(c.cfg.Now(), actor, "thresholds.update", "thresholds:*", before, t))
	if err == nil {
		c.global = t
	}
	c.cfgMu.Unlock()
	if err != nil {
		return fmt.Errorf("store thresholds: %w", err)
	}
	return c.reevaluateAll(ctx, triggerConfig, "")
}

// SetServiceThresholds validates, stores and applies a service's own set.
func (c *Controller) SetServiceThresholds(ctx context.Context, service string, t levels.Thresholds, actor brownout.Actor) error {
	if err := t.Validate(); err != nil {
		return err
	}
	c.cfgMu.Lock()
	var before any
	if old, ok := c.svcThresholds[service]; ok {
		before = old
	}
	err := c.store.PutServiceThresholds(ctx, service, t, audit(c.cfg.Now(), actor, "thresholds.update", "service:"+service, before, t))
	if err == nil {
		c.svcThresholds[service] = t
	}
	c.cfgMu.Unlock()
	if err != nil {
		return fmt.Errorf("store thresholds: %w", err)
	}
	return c.reevaluateAll(ctx, triggerConfig, service)
}

// DeleteServiceThresholds returns a service to the global thresholds.
// ENOTFOUND when it had none of its own.
func (c *Controller) DeleteServiceThresholds(ctx context.Context, service string, actor brownout.Actor) error {
	c.cfgMu.Lock()
	old, ok := c.svcThresholds[service]
	if !ok {
		c.cfgMu.Unlock()
		return brownout.Errorf(brownout.ENOTFOUND, "service %q has no thresholds of its own", service)
	}
	_, err := c.store.DeleteServiceThresholds(ctx, service, audit(c.cfg.Now(), actor, "thresholds.delete", "service:"+service, old, nil))
	if err == nil {
		delete(c.svcThresholds, service)
	}
	c.cfgMu.Unlock()
	if err != nil {
		return fmt.Errorf("delete thresholds: %w", err)
	}
	return c.reevaluateAll(ctx, triggerConfig, service)
}

// GlobalFlags returns the global default flag sets.
func (c *Controller) GlobalFlags() featureflags.Set {
	c.cfgMu.RLock()
	defer c.cfgMu.RUnlock()
	return c.globalFlags
}

// ServiceFlags returns a service's own flag set and whether it has one, and
// the effective (merged) set.
func (c *Controller) ServiceFlags(service string) (own featureflags.Set, ok bool, effective featureflags.Set) {
	c.cfgMu.RLock()
	own, ok = c.svcFlags[service]
	global := c.globalFlags
	c.cfgMu.RUnlock()
	return own, ok, featureflags.Merge(global, own).AsSet()
}

// SetGlobalFlags validates, stores and applies the global flag sets, and
// pushes the change to every service whose flags it changes.
func (c *Controller) SetGlobalFlags(ctx context.Context, s featureflags.Set, actor brownout.Actor) error {
	if err := s.Validate(true); err != nil {
		return err
	}
	c.cfgMu.Lock()
	before := c.globalFlags
	err := c.store.PutGlobalFlags(ctx, s, audit(c.cfg.Now(), actor, "flags.update", "flags:*", before, s))
	if err == nil {
		c.globalFlags = s
	}
	c.cfgMu.Unlock()
	if err != nil {
		return fmt.Errorf("store flags: %w", err)
	}
	return c.reevaluateAll(ctx, triggerConfig, "")
}

// SetServiceFlags validates, stores and applies a service's own flag set.
func (c *Controller) SetServiceFlags(ctx context.Context, service string, s featureflags.Set, actor brownout.Actor) error {
	if err := s.Validate(false); err != nil {
		return err
	}
	c.cfgMu.Lock()
	var before any
	if old, ok := c.svcFlags[service]; ok {
		before = old
	}
	err := c.store.PutServiceFlags(ctx, service, s, audit(c.cfg.Now(), actor, "flags.update", "service:"+service, before, s))
	if err == nil {
		c.svcFlags[service] = s
	}
	c.cfgMu.Unlock()
	if err != nil {
		return fmt.Errorf("store flags: %w", err)
	}
	return c.reevaluateAll(ctx, triggerConfig, service)
}

// DeleteServiceFlags returns a service to the global flag sets.
func (c *Controller) DeleteServiceFlags(ctx context.Context, service string, actor brownout.Actor) error {
	c.cfgMu.Lock()
	old, ok := c.svcFlags[service]
	if !ok {
		c.cfgMu.Unlock()
		return brownout.Errorf(brownout.ENOTFOUND, "service %q has no flag sets of its own", service)
	}
	_, err := c.store.DeleteServiceFlags(ctx, service, audit(c.cfg.Now(), actor, "flags.delete", "service:"+service, old, nil))
	if err == nil {
		delete(c.svcFlags, service)
	}
	c.cfgMu.Unlock()
	if err != nil {
		return fmt.Errorf("delete flags: %w", err)
	}
	return c.reevaluateAll(ctx, triggerConfig, service)
}

// reevaluateAll evaluates the named service, or all when only is empty.
func (c *Controller) reevaluateAll(ctx context.Context, trigger, only string) error {
	var svcs []*service
	for _, svc := range c.serviceList() {
		if only == "" || only == brownout.GlobalScope || svc.name == only {
			svcs = append(svcs, svc)
		}
	}
	return c.evaluateMany(ctx, svcs, c.cfg.Now(), func(*service) string { return trigger })
}

// OverrideRequest is what an operator asks for: the API's
// api.OverrideRequest with its checks.
type OverrideRequest api.OverrideRequest

// Validate checks the request and returns the TTL.
func (r OverrideRequest) Validate() (time.Duration, error) {
	if r.Service != brownout.GlobalScope {
		if err := brownout.CheckName("service", r.Service); err != nil {
			return 0, err
		}
	}
	if r.Level == nil {
		return 0, brownout.FieldErrorf(brownout.EINVALID, "level", "is required (0-3)")
	}
	if !levels.Level(*r.Level).Valid() {
		return 0, brownout.FieldErrorf(brownout.EINVALID, "level", "must be 0 to 3")
	}
	if strings.TrimSpace(r.Reason) == "" {
		return 0, brownout.FieldErrorf(brownout.EINVALID, "reason", "is required")
	}
	if len(r.Reason) > MaxReasonLen {
		return 0, brownout.FieldErrorf(brownout.EINVALID, "reason", "must be at most %d bytes", MaxReasonLen)
	}
	if r.TTL == "" {
		return 0, nil
	}
	ttl, err := time.ParseDuration(r.TTL)
	if err != nil {
		return 0, brownout.FieldErrorf(brownout.EINVALID, "ttl", "%q is not a duration such as \"15m\"", r.TTL)
	}
	if ttl < MinOverrideTTL || ttl > MaxOverrideTTL {
		return 0, brownout.FieldErrorf(brownout.EINVALID, "ttl", "must be between %s and %s", MinOverrideTTL, MaxOverrideTTL)
	}
	return ttl, nil
}

// CreateOverride validates, stores (durably, with audit) and applies an
// override, and pushes the result before returning.
func (c *Controller) CreateOverride(ctx context.Context, req OverrideRequest, actor brownout.Actor, emergency bool) (brownout.Override, error) {
	ttl, err := req.Validate()
	if err != nil {
		return brownout.Override{}, err
	}
	now := c.cfg.Now().UTC()
	o := brownout.Override{
		ID: newID("ovr_"), Service: req.Service, Level: *req.Level, Reason: strings.TrimSpace(req.Reason),
		Actor: actor.Name, Emergency: emergency, CreatedAt: now,
	}
	if ttl > 0 {
		exp := now.Add(ttl)
		o.ExpiresAt = &exp
	}
	action := "override.create"
	if emergency {
		action = "emergency.start"
	} else {
		// Emergency mode is exempt: it must work however many overrides
		// a careless script left behind.
		c.ovMu.Lock()
		n := len(c.overrides) + c.ovReserved
		if n >= c.cfg.MaxOverrides {
			c.ovMu.Unlock()
			return brownout.Override{}, brownout.Errorf(brownout.EINVALID, "%d overrides are active, the limit (--max-overrides); clear some first", n)
		}
		c.ovReserved++
		c.ovMu.Unlock()
		defer func() {
			c.ovMu.Lock()
			c.ovReserved--
			c.ovMu.Unlock()
		}()
	}
	c.ovSyncMu.Lock()
	defer c.ovSyncMu.Unlock()
	err = c.commitWith(ctx, c.affected(o.Service), now, func(*service) string { return triggerOverride }, &commitHooks{
		apply: func() {
			c.ovMu.Lock()
			c.overrides = append(c.overrides, o)
			sortOverrides(c.overrides)
			c.ovMu.Unlock()
		},
		save: func(batch []brownout.StateChange) error {
			return c.store.CreateOverrideWithStates(ctx, o, audit(now, actor, action, overrideTarget(o), nil, o), batch)
		},
		undo: func() { c.removeOverride(o.ID) },
	})
	if err != nil {
		return brownout.Override{}, fmt.Errorf("store override: %w", err)
	}
	return o, nil
}

// affected returns the services an override scope covers, in name order.
func (c *Controller) affected(scope string) []*service {
	var out []*service
	for _, svc := range c.serviceList() {
		if scope == brownout.GlobalScope || svc.name == scope {
			out = append(out, svc)
		}
	}
	return out
}

// removeOverride drops an override from the active list; it returns the
// override and whether it was there.
func (c *Controller) removeOverride(id string) (brownout.Override, bool) {
	c.ovMu.Lock()
	defer c.ovMu.Unlock()
	for i := range c.overrides {
		if c.overrides[i].ID == id {
			o := c.overrides[i]
			c.overrides = append(c.overrides[:i], c.overrides[i+1:]...)
			return o, true
		}
	}
	return brownout.Override{}, false
}

// ClearOverride ends an active override, durably and together with the
// states it changes, and pushes the result.
func (c *Controller) ClearOverride(ctx context.Context, id string, actor brownout.Actor) (brownout.Override, error) {
	now := c.cfg.Now().UTC()
	var before brownout.Override
	c.ovMu.RLock()
	for _, o := range c.overrides {
		if o.ID == id {
			before = o
		}
	}
	c.ovMu.RUnlock()
	after := before
	after.ClearedAt, after.ClearedBy = &now, actor.Name
	action := "override.clear"
	if before.Emergency {
		action = "emergency.end"
	}
	a := audit(now, actor, action, overrideTarget(before), before, after)
	if before.ID == "" {
		// Not active here (unknown, expired or cleared): the store says
		// which, and no state changes.
		return c.store.ClearOverrideWithStates(ctx, id, actor.Name, now, a, nil)
	}
	var cleared brownout.Override
	c.ovSyncMu.Lock()
	defer c.ovSyncMu.Unlock()
	err := c.commitWith(ctx, c.affected(before.Service), now, func(*service) string { return triggerOverride }, &commitHooks{
		apply: func() { c.removeOverride(id) },
		save: func(batch []brownout.StateChange) error {
			var err error
			cleared, err = c.store.ClearOverrideWithStates(ctx, id, actor.Name, now, a, batch)
			return err
		},
		undo: func() {
			c.ovMu.Lock()
			c.overrides = append(c.overrides, before)
			sortOverrides(c.overrides)
			c.ovMu.Unlock()
		},
	})
	if err != nil {
		return brownout.Override{}, err
	}
	return cleared, nil
}

// Overrides returns the active overrides, newest first.
func (c *Controller) Overrides() []brownout.Override {
	now := c.cfg.Now()
	c.ovMu.RLock()
	defer c.ovMu.RUnlock()
	out := make([]brownout.Override, 0, len(c.overrides))
	for i := len(c.overrides) - 1; i >= 0; i-- {
		if c.overrides[i].Active(now) {
			out = append(out, c.overrides[i])
		}
	}
	return out
}

// Emergency forces every service to level 3 with a global override.
func (c *Controller) Emergency(ctx context.Context, reason, ttl string, actor brownout.Actor) (brownout.Override, error) {
	l := int(levels.Maintenance)
	return c.CreateOverride(ctx, OverrideRequest{Service: brownout.GlobalScope, Level: &l, Reason: reason, TTL: ttl}, actor, true)
}

// EndEmergency clears every active emergency override; ENOTFOUND when none
// is active.
func (c *Controller) EndEmergency(ctx context.Context, actor brownout.Actor) ([]brownout.Override, error) {
	var ids []string
	for _, o := range c.Overrides() {
		if o.Emergency {
			ids = append(ids, o.ID)
		}
	}
	if len(ids) == 0 {
		return nil, brownout.Errorf(brownout.ENOTFOUND, "emergency mode is not active")
	}
	var out []brownout.Override
	for _, id := range ids {
		o, err := c.ClearOverride(ctx, id, actor)
		if err != nil {
			return out, err
		}
		out = append(out, o)
	}
	return out, nil
}

// ActiveEmergency returns the newest active emergency override, if any.
func (c *Controller) ActiveEmergency() *brownout.Override {
	for _, o := range c.Overrides() {
		if o.Emergency {
			return &o
		}
	}
	return nil
}
