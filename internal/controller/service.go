package controller

import (
	"github.com/brownout-io/brownout/sdk/wire"

	"encoding/json"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/health"
	"github.com/brownout-io/brownout/internal/hub"
	"github.com/brownout-io/brownout/internal/levels"
	"github.com/brownout-io/brownout/sdk/api"
	"github.com/brownout-io/brownout/sdk/component"
)

type service struct {
	name     string
	epoch    string
	commitMu sync.Mutex

	mu        sync.Mutex
	window    *health.Window
	engine    levels.State
	signals   levels.Signals
	live      int
	state     brownout.ServiceState
	flags     map[string]bool
	override  *brownout.Override
	detail    string
	snapshot  []byte
	instances map[string]*instance

	// inbox holds reports not yet in the window (see Ingest); spare keeps
	// each shard's drained slice for reuse.
	inbox [inboxShards]inboxShard
	spare [inboxShards][]inboxReport
	// nInstances mirrors len(instances) (set under mu), so that Ingest
	// needs mu only when the service is at its instance limit.
	nInstances atomic.Int64
	// wasLive is whether the previous tick saw a live instance, and
	// everLive whether any tick has since this process started: going
	// stale is announced on the tick that finds the last instance gone,
	// never for a service merely loaded without instances. Tick only.
	wasLive, everLive bool
	// retired is set, under commitMu, when the service is retired: no
	// evaluation commits for it any more (a revival makes a new service).
	retired atomic.Bool
	// bar holds the enter thresholds of the level above the computed one
	// (nil at MAINTENANCE), set at every evaluation, so that Ingest can
	// tell without a lock that a report may escalate; kicked is set while
	// the service waits for an evaluation on that account.
	bar    atomic.Pointer[levels.LevelThresholds]
	kicked atomic.Bool
}

// setBar records the thresholds a report must reach to escalate from l.
func (s *service) setBar(t levels.Thresholds, l levels.Level) {
	if l >= levels.MaxLevel {
		s.bar.Store(nil)
		return
	}
	if b := s.bar.Load(); b != nil && *b == t.For(l+1) {
		return
	}
	b := t.For(l + 1)
	s.bar.Store(&b)
}

// escalates reports whether r alone reaches an enter threshold above the
// computed level (its error rate only over health.MinLatestRequests
// requests or more): the aggregate may then escalate before the next tick.
func (s *service) escalates(r health.Report) bool {
	b := s.bar.Load()
	if b == nil {
		return false
	}
	if r.CPUPercent != nil && *r.CPUPercent >= b.CPU.Enter {
		return true
	}
	if r.MemoryPercent != nil && *r.MemoryPercent >= b.Memory.Enter {
		return true
	}
	if r.ErrorRate != nil {
		return *r.ErrorRate >= b.ErrorRate.Enter
	}
	return r.Requests >= health.MinLatestRequests && float64(r.Errors) >= b.ErrorRate.Enter*float64(r.Requests)
}

// countInstancesLocked refreshes nInstances; mu held.
func (s *service) countInstancesLocked() { s.nInstances.Store(int64(len(s.instances))) }

// instance is one reporting instance; its subscriptions are the hub's.
type instance struct {
	lastSeen      time.Time // last report
	componentCost int64     // component budget its stored components hold
}

// StateMessage is the snapshot a subscriber receives, encoded once per
// change and shared by every subscriber of the service: the wire
// contract's state frame.
type StateMessage = wire.State

func (s *service) message() StateMessage {
	return StateMessage{
		Type: wire.TypeState, Service: s.name, Epoch: s.epoch, Version: s.state.Version, Level: wire.Level(s.state.Level),
		LevelName: wire.Level(s.state.Level).String(), ComputedLevel: wire.Level(s.state.ComputedLevel),
		Flags: s.flags, Override: wireOverride(s.override), Cause: s.state.Cause, Detail: s.detail, ChangedAt: s.state.ChangedAt,
	}
}

// wireOverride is the part of an override a state frame carries.
func wireOverride(o *brownout.Override) *wire.Override {
	if o == nil {
		return nil
	}
	return &wire.Override{
		ID: o.ID, Service: o.Service, Level: wire.Level(o.Level), Reason: o.Reason, Actor: o.Actor,
		Emergency: o.Emergency, CreatedAt: o.CreatedAt, ExpiresAt: o.ExpiresAt,
	}
}

func (s *service) encodeState() []byte {
	b, err := json.Marshal(s.message())
	if err != nil {
		panic(err) // only plain types: cannot fail
	}
	return b
}

// InstanceView is one instance as the API and dashboard show it.
type InstanceView = api.InstanceView

// Convergence says which live instances run which version.
type Convergence = api.Convergence

// ServiceView is a service as the API and dashboard show it.
type ServiceView = api.ServiceView

// viewMode says how much per-instance detail a view carries.
type viewMode struct {
	instances  bool // list instances
	components bool // with their components
	max        int  // at most this many instances (0: all)
}

var (
	viewSummary   = viewMode{}
	viewInstances = viewMode{instances: true}
)

func (c *Controller) view(svc *service, now time.Time, mode viewMode) ServiceView {
	th := c.thresholdsFor(svc.name)
	c.cfgMu.RLock()
	_, customT := c.svcThresholds[svc.name]
	_, customF := c.svcFlags[svc.name]
	c.cfgMu.RUnlock()
	// Presence is read before the service's lock: the hub's locks and the
	// service's are never held together.
	pres, nsubs := c.hub.Presence(svc.name)

	svc.mu.Lock()
	defer svc.mu.Unlock()
	c.drainLocked(svc)
	v := ServiceView{
		Name: svc.name, Level: svc.state.Level, LevelName: levels.Level(svc.state.Level).String(),
		ComputedLevel: svc.state.ComputedLevel, Version: svc.state.Version, Override: svc.override,
		Flags: svc.flags, Signals: svc.signals, Cause: svc.state.Cause, Detail: svc.detail,
		ChangedAt: svc.state.ChangedAt, CreatedAt: svc.state.CreatedAt, Subscribers: nsubs,
		Thresholds: api.Thresholds(th), CustomThresholds: customT, CustomFlags: customF,
		Convergence: Convergence{Versions: map[uint64]int{}},
	}
	stats := map[string]health.InstanceStats{}
	for _, st := range svc.window.Instances(now) {
		stats[st.Name] = st
	}
	byName := make(map[string]hub.Presence, len(pres))
	for _, p := range pres {
		byName[p.Instance] = p
	}
	names := make([]string, 0, len(svc.instances)+len(pres))
	for name := range svc.instances {
		names = append(names, name)
	}
	for _, p := range pres {
		if _, ok := svc.instances[p.Instance]; !ok {
			names = append(names, p.Instance)
		}
	}
	var slowest time.Duration
	var lastReport time.Time
	for _, name := range names {
		p := byName[name]
		iv := InstanceView{Name: name, Connected: p.Conns > 0, LastSeen: p.LastSeen, Version: p.Acked}
		if in := svc.instances[name]; in != nil && in.lastSeen.After(iv.LastSeen) {
			iv.LastSeen = in.lastSeen
		}
		st, reported := stats[name]
		if reported {
			lr := st.LastSeen
			iv.LastReport = &lr
			iv.CPUPercent, iv.MemoryPercent, iv.ErrorRate = st.CPUPercent, st.MemoryPercent, st.ErrorRate
			if mode.components {
				iv.Components = st.Components
			}
			if lr.After(lastReport) {
				lastReport = lr
			}
		}
		iv.Stale = p.Conns == 0 && (!reported || st.Stale)
		if !p.AckedAt.IsZero() {
			a := p.AckedAt
			iv.AckedAt = &a
		}
		if p.AckLatency > 0 {
			iv.AckLatency = p.AckLatency.String()
		}
		if !iv.Stale && p.Conns > 0 {
			v.Convergence.Live++
			v.Convergence.Versions[p.Acked]++
			if p.Acked == svc.state.Version {
				v.Convergence.OnCurrent++
				if p.AckLatency > slowest {
					slowest = p.AckLatency
				}
			} else if len(v.Convergence.Behind) < 20 {
				v.Convergence.Behind = append(v.Convergence.Behind, name)
			}
		}
		v.InstanceCount++
		if iv.Stale {
			v.StaleInstances++
		}
		if mode.instances {
			v.Instances = append(v.Instances, iv)
		}
	}
	sort.Slice(v.Instances, func(i, j int) bool { return v.Instances[i].Name < v.Instances[j].Name })
	if mode.max > 0 && len(v.Instances) > mode.max {
		v.Instances = v.Instances[:mode.max]
	}
	sort.Strings(v.Convergence.Behind)
	if slowest > 0 {
		v.Convergence.SlowestAck = slowest.String()
	}
	if !lastReport.IsZero() {
		v.LastReport = &lastReport
	}
	v.Stale = svc.live == 0
	if mode.instances && v.Instances == nil {
		v.Instances = []InstanceView{}
	}
	return v
}

// Services returns every service, worst first (effective level, then
// name), without per-instance detail: instance counts only, so that a
// list stays small however many instances report.
func (c *Controller) Services() []ServiceView {
	now := c.cfg.Now()
	list := c.serviceList()
	out := make([]ServiceView, 0, len(list))
	for _, svc := range list {
		out = append(out, c.view(svc, now, viewSummary))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Level > out[j].Level })
	return out
}

// Service returns one service with its instances (by name), without their
// components; ENOTFOUND when unknown.
func (c *Controller) Service(name string) (ServiceView, error) {
	return c.serviceView(name, viewInstances)
}

// ServicePage returns one service with at most max instances (by name),
// each with its components: what the dashboard's service page shows.
func (c *Controller) ServicePage(name string, max int) (ServiceView, error) {
	return c.serviceView(name, viewMode{instances: true, components: true, max: max})
}

func (c *Controller) serviceView(name string, mode viewMode) (ServiceView, error) {
	c.mu.RLock()
	svc := c.services[name]
	c.mu.RUnlock()
	if svc == nil {
		return ServiceView{}, brownout.Errorf(brownout.ENOTFOUND, "service %q not found", name)
	}
	return c.view(svc, c.cfg.Now(), mode), nil
}

// ComponentView is one component an instance reports, with its name.
type ComponentView struct {
	Name string `json:"name"`
	component.State
}

// Components returns the components one instance last reported, by name;
// ENOTFOUND when the service or instance is unknown.
func (c *Controller) Components(service, instance string) ([]ComponentView, error) {
	c.mu.RLock()
	svc := c.services[service]
	c.mu.RUnlock()
	if svc == nil {
		return nil, brownout.Errorf(brownout.ENOTFOUND, "service %q not found", service)
	}
	svc.mu.Lock()
	c.drainLocked(svc)
	_, known := svc.instances[instance]
	cs := svc.window.Components(instance)
	out := make([]ComponentView, 0, len(cs))
	for name, st := range cs {
		out = append(out, ComponentView{Name: name, State: st})
	}
	svc.mu.Unlock()
	if !known && len(out) == 0 {
		return nil, brownout.Errorf(brownout.ENOTFOUND, "instance %q of service %q not found", instance, service)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// State returns a service's current snapshot message.
func (c *Controller) State(name string) (StateMessage, error) {
	c.mu.RLock()
	svc := c.services[name]
	c.mu.RUnlock()
	if svc == nil {
		return StateMessage{}, brownout.Errorf(brownout.ENOTFOUND, "service %q not found", name)
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	return svc.message(), nil
}
