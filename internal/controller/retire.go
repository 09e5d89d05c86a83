package controller

import (
	"context"
	"encoding/json"

	"github.com/brownout-io/brownout"
)

// retireObserver is told when a service is retired, so that per-service
// metrics stop reporting it.
type retireObserver interface {
	ServiceRetired(service string)
}

// RetireService retires a service that no live instance reports for any
// more: it leaves the service list, the dashboard and the metrics, while
// its history (level changes, samples, audit) and its stored version stay.
// The retirement and its audit entry commit in one transaction. If the
// service reports again it is revived, and its versions continue above the
// stored one, so subscribers never see them go back.
//
// It returns ENOTFOUND for an unknown service and ECONFLICT while live
// instances still report (they would revive it at once).
func (c *Controller) RetireService(ctx context.Context, name string, actor brownout.Actor) (brownout.ServiceState, error) {
	if err := brownout.CheckName("service", name); err != nil {
		return brownout.ServiceState{}, err
	}
	svc, err := c.service(ctx, name, false)
	if err != nil {
		return brownout.ServiceState{}, err
	}
	c.createMu.Lock() // no creation or revival of this name meanwhile
	defer c.createMu.Unlock()
	svc.commitMu.Lock() // no evaluation commits for it meanwhile
	defer svc.commitMu.Unlock()
	if svc.retired.Load() {
		return brownout.ServiceState{}, brownout.Errorf(brownout.ENOTFOUND, "service %q not found", name)
	}
	now := c.cfg.Now()
	svc.mu.Lock()
	c.drainLocked(svc)
	_, live := svc.window.Signals(now)
	st := svc.state
	svc.mu.Unlock()
	if live > 0 {
		return brownout.ServiceState{}, brownout.Errorf(brownout.ECONFLICT,
			"service %q has %d live instance(s) reporting; stop them (or wait --stale-after) before retiring it, or their next report revives it", name, live)
	}
	before, _ := json.Marshal(st)
	a := audit(now, actor, "service.retire", name, json.RawMessage(before), nil)
	if err := c.store.RetireService(ctx, name, now, a); err != nil {
		return brownout.ServiceState{}, err
	}
	svc.retired.Store(true)
	st.RetiredAt = now
	c.mu.Lock()
	delete(c.services, name)
	c.retired[name] = st
	c.mu.Unlock()
	if r, ok := c.obs.(retireObserver); ok {
		r.ServiceRetired(name)
	}
	c.log.Info("service retired", "service", name, "version", st.Version, "by", actor.Name)
	c.notifyWatchers()
	return st, nil
}
