package controller

import (
	"context"
	"encoding/json"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/health"
	"github.com/brownout-io/brownout/internal/levels"
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
	subs      map[*Subscriber]struct{}

	// inbox holds reports not yet in the window (see Ingest); spare keeps
	// each shard's drained slice for reuse.
	inbox [inboxShards]inboxShard
	spare [inboxShards][]inboxReport
	// curVersion mirrors state.Version for lock-free readers (Ack).
	curVersion atomic.Uint64
	// nInstances mirrors len(instances) (set under mu), so that Ingest
	// needs mu only when the service is at its instance limit.
	nInstances atomic.Int64
}

// countInstancesLocked refreshes nInstances; mu held.
func (s *service) countInstancesLocked() { s.nInstances.Store(int64(len(s.instances))) }

type instance struct {
	lastSeen time.Time // last report, ack or connection
	conns    int
	// Ack state is written by Ack without the service's lock, which one
	// ack per subscriber per change would otherwise contend on.
	acked       atomic.Uint64
	ackedAt     atomic.Int64 // Unix nanoseconds; 0 before the first ack
	ackLatency  atomic.Int64 // nanoseconds
	connectedAt time.Time
}

// StateMessage is the snapshot a subscriber receives, encoded once per
// change and shared by every subscriber of the service.
type StateMessage struct {
	Type          string             `json:"type"`
	Service       string             `json:"service"`
	Epoch         string             `json:"epoch"`
	Version       uint64             `json:"version"`
	Level         int                `json:"level"`
	LevelName     string             `json:"level_name"`
	ComputedLevel int                `json:"computed_level"`
	Flags         map[string]bool    `json:"flags"`
	Override      *brownout.Override `json:"override"`
	Cause         string             `json:"cause"`
	Detail        string             `json:"detail,omitempty"`
	ChangedAt     time.Time          `json:"changed_at"`
}

func (s *service) message() StateMessage {
	return StateMessage{
		Type: "state", Service: s.name, Epoch: s.epoch, Version: s.state.Version, Level: s.state.Level,
		LevelName: levels.Level(s.state.Level).String(), ComputedLevel: s.state.ComputedLevel,
		Flags: s.flags, Override: s.override, Cause: s.state.Cause, Detail: s.detail, ChangedAt: s.state.ChangedAt,
	}
}

func (s *service) encodeState() []byte {
	b, err := json.Marshal(s.message())
	if err != nil {
		panic(err) // only plain types: cannot fail
	}
	return b
}

// Message is one frame for a subscriber.
type Message struct {
	Version uint64
	Data    []byte
}

// Close codes sent to subscribers when the controller ends a connection.
const (
	CloseRevoked  = 4401 // the token was revoked: final for the client
	CloseShutdown = 1001 // going away: reconnect
)

// Subscriber is one websocket connection's view of its service: the latest
// pending snapshot and a way to be woken when it changes — a callback set
// with OnReady (what the websocket server uses), or else the Ready channel.
// The woken writer sends Take's message.
type Subscriber struct {
	Service  string
	Instance string
	TokenID  string

	pending atomic.Pointer[Message]
	ready   chan struct{}
	notify  atomic.Pointer[func()]
	done    chan struct{}
	once    sync.Once
	code    atomic.Int32
	reason  atomic.Value

	svc  *service
	inst *instance // stays in the service's map while subscribed

	// the last change pushed to this subscriber, for propagation latency
	pushedVersion atomic.Uint64
	pushedAt      atomic.Int64 // Unix nanoseconds; 0 once acked
}

// Ready is signalled whenever a new message is pending.
func (s *Subscriber) Ready() <-chan struct{} { return s.ready }

// Done is closed when the controller ends the subscription (token revoked,
// shutdown); CloseCode and CloseReason then say why.
func (s *Subscriber) Done() <-chan struct{} { return s.done }

// CloseCode is the websocket close code to use once Done is closed.
func (s *Subscriber) CloseCode() int { return int(s.code.Load()) }

// CloseReason is the close reason to use once Done is closed.
func (s *Subscriber) CloseReason() string {
	r, _ := s.reason.Load().(string)
	return r
}

// Take returns the latest pending message and clears it; nil when none.
func (s *Subscriber) Take() *Message { return s.pending.Swap(nil) }

// Pending reports whether a message waits to be taken.
func (s *Subscriber) Pending() bool { return s.pending.Load() != nil }

// OnReady sets a function called, instead of signalling Ready, whenever a
// message becomes pending or the subscription ends. It runs on the
// publisher's goroutine under the service's lock: it must not block (start
// a goroutine, set a flag). A message offered before OnReady is set is
// still pending: check Pending after setting it.
func (s *Subscriber) OnReady(fn func()) { s.notify.Store(&fn) }

func (s *Subscriber) offer(m *Message) {
	s.pending.Store(m)
	if fn := s.notify.Load(); fn != nil {
		(*fn)()
		return
	}
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

func (s *Subscriber) end(code int, reason string) {
	s.once.Do(func() {
		s.code.Store(int32(code))
		s.reason.Store(reason)
		close(s.done)
		if fn := s.notify.Load(); fn != nil {
			(*fn)()
		}
	})
}

// publishLocked offers the current snapshot to every subscriber; s.mu held.
// It never blocks.
func (s *service) publishLocked(now time.Time) int {
	m := &Message{Version: s.state.Version, Data: s.snapshot}
	for sub := range s.subs {
		sub.pushedVersion.Store(m.Version)
		sub.pushedAt.Store(now.UnixNano())
		sub.offer(m)
	}
	return len(s.subs)
}

// Subscribe registers a subscriber for service/instance (creating the
// service if needed) and queues its first message: the current state, or an
// "unchanged" frame when the client already runs version known.
//
// knownEpoch is the epoch of the client's version; when it is given and
// differs from the controller's, the client's version means nothing here
// and it gets the full state.
func (c *Controller) Subscribe(ctx context.Context, service, instanceName, tokenID string, known uint64, knownEpoch string) (*Subscriber, error) {
	svc, err := c.service(ctx, service, true)
	if err != nil {
		return nil, err
	}
	sub := &Subscriber{Service: service, Instance: instanceName, TokenID: tokenID, ready: make(chan struct{}, 1), done: make(chan struct{})}
	now := c.cfg.Now()
	svc.mu.Lock()
	in := svc.instances[instanceName]
	if in == nil {
		if len(svc.instances) >= c.cfg.MaxInstances {
			svc.mu.Unlock()
			return nil, brownout.Errorf(brownout.EINVALID, "service %q already has %d instances, the most allowed", service, c.cfg.MaxInstances)
		}
		in = &instance{}
		svc.instances[instanceName] = in
		svc.countInstancesLocked()
	}
	in.conns++
	in.lastSeen, in.connectedAt = now, now
	sub.svc, sub.inst = svc, in
	svc.subs[sub] = struct{}{}
	if known != 0 && known == svc.state.Version && (knownEpoch == "" || knownEpoch == c.epoch) {
		b, _ := json.Marshal(map[string]any{"type": "unchanged", "service": service, "epoch": c.epoch, "version": known})
		sub.offer(&Message{Version: known, Data: b})
	} else {
		// The first snapshot is not a change: its ack does not count as
		// propagation latency.
		sub.offer(&Message{Version: svc.state.Version, Data: svc.snapshot})
	}
	svc.mu.Unlock()

	c.tokMu.Lock()
	set := c.byToken[tokenID]
	if set == nil {
		set = map[*Subscriber]struct{}{}
		c.byToken[tokenID] = set
	}
	set[sub] = struct{}{}
	c.tokMu.Unlock()
	c.obs.SubscribersChanged(1)
	return sub, nil
}

// Unsubscribe removes a subscriber; call it once its connection is gone.
func (c *Controller) Unsubscribe(sub *Subscriber) {
	c.mu.RLock()
	svc := c.services[sub.Service]
	c.mu.RUnlock()
	if svc != nil {
		now := c.cfg.Now()
		svc.mu.Lock()
		if _, ok := svc.subs[sub]; ok {
			delete(svc.subs, sub)
			if in := svc.instances[sub.Instance]; in != nil {
				in.conns--
				in.lastSeen = now
			}
		}
		svc.mu.Unlock()
	}
	c.tokMu.Lock()
	if set := c.byToken[sub.TokenID]; set != nil {
		delete(set, sub)
		if len(set) == 0 {
			delete(c.byToken, sub.TokenID)
		}
	}
	c.tokMu.Unlock()
	sub.end(CloseShutdown, "unsubscribed")
	c.obs.SubscribersChanged(-1)
}

// Ack records that the subscriber's instance applied version. It takes
// no lock: every subscriber acks every change.
func (c *Controller) Ack(sub *Subscriber, version uint64) {
	svc, in := sub.svc, sub.inst
	if svc == nil || in == nil || version > svc.curVersion.Load() {
		return // a version we never sent
	}
	for {
		old := in.acked.Load()
		if version < old {
			return
		}
		if in.acked.CompareAndSwap(old, version) {
			break
		}
	}
	now := c.cfg.Now().UnixNano()
	in.ackedAt.Store(now)
	if version == sub.pushedVersion.Load() {
		if at := sub.pushedAt.Swap(0); at != 0 && now > at {
			lat := time.Duration(now - at)
			in.ackLatency.Store(int64(lat))
			c.obs.AckLatency(lat)
		}
	}
}

// CloseToken ends every subscription that uses the token.
func (c *Controller) CloseToken(tokenID, reason string) int {
	c.tokMu.Lock()
	subs := make([]*Subscriber, 0, len(c.byToken[tokenID]))
	for s := range c.byToken[tokenID] {
		subs = append(subs, s)
	}
	c.tokMu.Unlock()
	for _, s := range subs {
		s.end(CloseRevoked, reason)
	}
	return len(subs)
}

// CloseAll ends every subscription with going-away, for shutdown.
func (c *Controller) CloseAll() {
	c.tokMu.Lock()
	var subs []*Subscriber
	for _, set := range c.byToken {
		for s := range set {
			subs = append(subs, s)
		}
	}
	c.tokMu.Unlock()
	for _, s := range subs {
		s.end(CloseShutdown, "controller shutting down")
	}
}

// ConnectionsForToken counts live subscriptions that use a token.
func (c *Controller) ConnectionsForToken(tokenID string) int {
	c.tokMu.Lock()
	defer c.tokMu.Unlock()
	return len(c.byToken[tokenID])
}

// InstanceView is one instance as the API and dashboard show it.
type InstanceView struct {
	Name          string                     `json:"name"`
	Stale         bool                       `json:"stale"`
	Connected     bool                       `json:"connected"`
	LastSeen      time.Time                  `json:"last_seen"`
	LastReport    *time.Time                 `json:"last_report"`
	Version       uint64                     `json:"version"`
	AckedAt       *time.Time                 `json:"acked_at,omitempty"`
	AckLatency    string                     `json:"ack_latency,omitempty"`
	CPUPercent    float64                    `json:"cpu_percent"`
	MemoryPercent float64                    `json:"memory_percent"`
	ErrorRate     float64                    `json:"error_rate"`
	Components    map[string]component.State `json:"components,omitempty"`
}

// Convergence says which live instances run which version.
type Convergence struct {
	Live       int            `json:"live"`
	OnCurrent  int            `json:"on_current"`
	Versions   map[uint64]int `json:"versions"`
	SlowestAck string         `json:"slowest_ack,omitempty"`
	Behind     []string       `json:"behind,omitempty"`
}

// ServiceView is a service as the API and dashboard show it.
type ServiceView struct {
	Name             string             `json:"name"`
	Level            int                `json:"level"`
	LevelName        string             `json:"level_name"`
	ComputedLevel    int                `json:"computed_level"`
	Version          uint64             `json:"version"`
	Override         *brownout.Override `json:"override"`
	Flags            map[string]bool    `json:"flags"`
	Signals          levels.Signals     `json:"signals"`
	Stale            bool               `json:"stale"`
	Cause            string             `json:"cause"`
	Detail           string             `json:"detail,omitempty"`
	ChangedAt        time.Time          `json:"changed_at"`
	CreatedAt        time.Time          `json:"created_at"`
	LastReport       *time.Time         `json:"last_report"`
	Subscribers      int                `json:"subscribers"`
	Instances        []InstanceView     `json:"instances"`
	Convergence      Convergence        `json:"convergence"`
	Thresholds       levels.Thresholds  `json:"thresholds"`
	CustomThresholds bool               `json:"custom_thresholds"`
	CustomFlags      bool               `json:"custom_flags"`
}

func (c *Controller) view(svc *service, now time.Time) ServiceView {
	th := c.thresholdsFor(svc.name)
	c.cfgMu.RLock()
	_, customT := c.svcThresholds[svc.name]
	_, customF := c.svcFlags[svc.name]
	c.cfgMu.RUnlock()

	svc.mu.Lock()
	defer svc.mu.Unlock()
	c.drainLocked(svc)
	v := ServiceView{
		Name: svc.name, Level: svc.state.Level, LevelName: levels.Level(svc.state.Level).String(),
		ComputedLevel: svc.state.ComputedLevel, Version: svc.state.Version, Override: svc.override,
		Flags: svc.flags, Signals: svc.signals, Cause: svc.state.Cause, Detail: svc.detail,
		ChangedAt: svc.state.ChangedAt, CreatedAt: svc.state.CreatedAt, Subscribers: len(svc.subs),
		Thresholds: th, CustomThresholds: customT, CustomFlags: customF,
		Convergence: Convergence{Versions: map[uint64]int{}},
	}
	stats := map[string]health.InstanceStats{}
	for _, st := range svc.window.Instances(now) {
		stats[st.Name] = st
	}
	var slowest time.Duration
	var lastReport time.Time
	for name, in := range svc.instances {
		acked, ackedAt, ackLat := in.acked.Load(), in.ackedAt.Load(), time.Duration(in.ackLatency.Load())
		iv := InstanceView{Name: name, Connected: in.conns > 0, LastSeen: in.lastSeen, Version: acked}
		if ackedAt != 0 && time.Unix(0, ackedAt).After(iv.LastSeen) {
			iv.LastSeen = time.Unix(0, ackedAt).UTC()
		}
		st, reported := stats[name]
		if reported {
			lr := st.LastSeen
			iv.LastReport = &lr
			iv.CPUPercent, iv.MemoryPercent, iv.ErrorRate = st.CPUPercent, st.MemoryPercent, st.ErrorRate
			iv.Components = st.Components
			if lr.After(lastReport) {
				lastReport = lr
			}
		}
		iv.Stale = in.conns == 0 && (!reported || st.Stale)
		if ackedAt != 0 {
			a := time.Unix(0, ackedAt).UTC()
			iv.AckedAt = &a
		}
		if ackLat > 0 {
			iv.AckLatency = ackLat.String()
		}
		if !iv.Stale && in.conns > 0 {
			v.Convergence.Live++
			v.Convergence.Versions[acked]++
			if acked == svc.state.Version {
				v.Convergence.OnCurrent++
				if ackLat > slowest {
					slowest = ackLat
				}
			} else if len(v.Convergence.Behind) < 20 {
				v.Convergence.Behind = append(v.Convergence.Behind, name)
			}
		}
		v.Instances = append(v.Instances, iv)
	}
	sort.Slice(v.Instances, func(i, j int) bool { return v.Instances[i].Name < v.Instances[j].Name })
	sort.Strings(v.Convergence.Behind)
	if slowest > 0 {
		v.Convergence.SlowestAck = slowest.String()
	}
	if !lastReport.IsZero() {
		v.LastReport = &lastReport
	}
	v.Stale = svc.live == 0
	if v.Instances == nil {
		v.Instances = []InstanceView{}
	}
	return v
}

// Services returns every service, worst first (effective level, then name).
func (c *Controller) Services() []ServiceView {
	now := c.cfg.Now()
	list := c.serviceList()
	out := make([]ServiceView, 0, len(list))
	for _, svc := range list {
		out = append(out, c.view(svc, now))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Level > out[j].Level })
	return out
}

// Service returns one service; ENOTFOUND when unknown.
func (c *Controller) Service(name string) (ServiceView, error) {
	c.mu.RLock()
	svc := c.services[name]
	c.mu.RUnlock()
	if svc == nil {
		return ServiceView{}, brownout.Errorf(brownout.ENOTFOUND, "service %q not found", name)
	}
	return c.view(svc, c.cfg.Now()), nil
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
