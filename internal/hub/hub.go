// Package hub fans committed service snapshots out to websocket
// subscribers. It is fed only by committed changes — a local evaluation or
// a notification from another replica, it cannot tell which — and knows
// nothing of levels, stores or why a state changed.
//
// Publish never blocks and never waits for a subscriber: each subscriber
// keeps only the latest pending snapshot (every snapshot is complete, so
// skipping intermediate ones is safe), and a snapshot whose version is not
// above the one already published for its service is dropped, so that two
// feeds racing cannot make a subscriber's version go back.
//
// Locking: Hub.mu guards the topic map; topic.mu guards one service's
// latest snapshot, subscribers and presence; Hub.tokMu guards the token
// index. No lock is held while a connection is written to.
package hub

import (
	"github.com/brownout-io/brownout/sdk/wire"

	"encoding/json"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brownout-io/brownout"
)

// Snapshot is one committed state of a service, encoded once and shared by
// every subscriber of the service.
type Snapshot struct {
	Service string
	Epoch   string
	Version uint64
	Data    []byte
}

// Observer receives the hub's events for metrics. Methods must not block.
type Observer interface {
	Pushed(service string, subscribers int)
	AckLatency(d time.Duration)
	SubscribersChanged(delta int)
}

type nopObserver struct{}

func (nopObserver) Pushed(string, int)       {}
func (nopObserver) AckLatency(time.Duration) {}
func (nopObserver) SubscribersChanged(int)   {}

// Config tunes the hub. Zero values take the defaults.
type Config struct {
	// MaxInstances bounds the instances of one service that may hold
	// subscriptions at once (10,000).
	MaxInstances int
	// ForgetAfter drops the presence of an instance disconnected for this
	// long (10 min).
	ForgetAfter time.Duration
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// Close codes sent to subscribers when the hub ends a connection.
const (
	CloseRevoked  = wire.CloseRevoked  // the token was revoked: final for the client
	CloseShutdown = wire.CloseShutdown // going away: reconnect
)

// Hub is the set of subscribers of every service. The zero value is not
// usable; create one with New.
type Hub struct {
	cfg Config
	obs Observer

	mu     sync.RWMutex
	topics map[string]*topic

	tokMu   sync.Mutex
	byToken map[string]map[*Subscriber]struct{}
	revoked map[string]struct{}

	total atomic.Int64
}

type topic struct {
	mu       sync.Mutex
	latest   *Snapshot
	version  atomic.Uint64 // latest.Version, for lock-free Ack
	subs     map[*Subscriber]struct{}
	presence map[string]*presence
}

// presence is one instance's subscriptions on this hub.
type presence struct {
	conns       int
	lastSeen    time.Time // connect or disconnect
	connectedAt time.Time
	// Ack state is written without the topic's lock, which one ack per
	// subscriber per change would otherwise contend on.
	acked      atomic.Uint64
	ackedAt    atomic.Int64 // Unix nanoseconds; 0 before the first ack
	ackLatency atomic.Int64 // nanoseconds
}

// New returns an empty hub. obs may be nil.
func New(cfg Config, obs Observer) *Hub {
	if cfg.MaxInstances <= 0 {
		cfg.MaxInstances = 10_000
	}
	if cfg.ForgetAfter <= 0 {
		cfg.ForgetAfter = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if obs == nil {
		obs = nopObserver{}
	}
	return &Hub{
		cfg: cfg, obs: obs,
		topics:  map[string]*topic{},
		byToken: map[string]map[*Subscriber]struct{}{},
		revoked: map[string]struct{}{},
	}
}

func (h *Hub) topic(service string, create bool) *topic {
	h.mu.RLock()
	t := h.topics[service]
	h.mu.RUnlock()
	if t != nil || !create {
		return t
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if t = h.topics[service]; t == nil {
		t = &topic{subs: map[*Subscriber]struct{}{}, presence: map[string]*presence{}}
		h.topics[service] = t
	}
	return t
}

// Publish offers s to every subscriber of its service and returns how many
// it was offered to. It never blocks. A snapshot not newer than the one
// already published for the service (same epoch) is dropped and Publish
// returns -1: feeds may deliver the same commit twice or out of order.
func (h *Hub) Publish(s Snapshot) int {
	t := h.topic(s.Service, true)
	now := h.cfg.Now().UnixNano()
	t.mu.Lock()
	if old := t.latest; old != nil && old.Epoch == s.Epoch && s.Version <= old.Version {
		t.mu.Unlock()
		return -1
	}
	snap := s
	t.latest = &snap
	t.version.Store(s.Version)
	m := &Message{Version: s.Version, Data: s.Data}
	for sub := range t.subs {
		sub.pushedVersion.Store(m.Version)
		sub.pushedAt.Store(now)
		sub.offer(m)
	}
	n := len(t.subs)
	t.mu.Unlock()
	h.obs.Pushed(s.Service, n)
	return n
}

// Latest returns the newest snapshot published for service.
func (h *Hub) Latest(service string) (Snapshot, bool) {
	t := h.topic(service, false)
	if t == nil {
		return Snapshot{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.latest == nil {
		return Snapshot{}, false
	}
	return *t.latest, true
}

// Subscribe registers a subscriber for service/instance and queues its
// first message: the latest snapshot, or an "unchanged" frame when the
// client already runs version known of the same epoch (knownEpoch empty
// means the client did not say). The service must have a published
// snapshot, else ENOTFOUND; a token revoked before or while subscribing
// gets EUNAUTHORIZED, so that a revocation racing an upgrade never leaves
// a socket open.
func (h *Hub) Subscribe(service, instance, tokenID string, known uint64, knownEpoch string) (*Subscriber, error) {
	t := h.topic(service, false)
	if t == nil {
		return nil, brownout.Errorf(brownout.ENOTFOUND, "service %q not found", service)
	}
	sub := &Subscriber{Service: service, Instance: instance, TokenID: tokenID, ready: make(chan struct{}, 1), done: make(chan struct{}), hub: h, topic: t}

	// Enter the token index first: a revocation from now on finds the
	// subscriber, and one before it is in the revoked set.
	h.tokMu.Lock()
	if _, gone := h.revoked[tokenID]; gone && tokenID != "" {
		h.tokMu.Unlock()
		return nil, brownout.Errorf(brownout.EUNAUTHORIZED, "the token was revoked")
	}
	set := h.byToken[tokenID]
	if set == nil {
		set = map[*Subscriber]struct{}{}
		h.byToken[tokenID] = set
	}
	set[sub] = struct{}{}
	h.tokMu.Unlock()

	now := h.cfg.Now()
	t.mu.Lock()
	if t.latest == nil {
		t.mu.Unlock()
		h.dropToken(sub)
		return nil, brownout.Errorf(brownout.ENOTFOUND, "service %q not found", service)
	}
	p := t.presence[instance]
	if p == nil {
		if len(t.presence) >= h.cfg.MaxInstances {
			t.mu.Unlock()
			h.dropToken(sub)
			return nil, brownout.Errorf(brownout.EINVALID, "service %q already has %d instances, the most allowed", service, h.cfg.MaxInstances)
		}
		p = &presence{}
		t.presence[instance] = p
	}
	p.conns++
	p.lastSeen, p.connectedAt = now, now
	sub.pres = p
	t.subs[sub] = struct{}{}
	cur := t.latest
	if known != 0 && known == cur.Version && (knownEpoch == "" || knownEpoch == cur.Epoch) {
		b, _ := json.Marshal(wire.Unchanged{Type: wire.TypeUnchanged, Service: service, Epoch: cur.Epoch, Version: known})
		sub.offer(&Message{Version: known, Data: b})
	} else {
		// The first snapshot is not a change: its ack does not count as
		// propagation latency.
		sub.offer(&Message{Version: cur.Version, Data: cur.Data})
	}
	t.mu.Unlock()
	h.total.Add(1)
	h.obs.SubscribersChanged(1)
	return sub, nil
}

func (h *Hub) dropToken(sub *Subscriber) {
	h.tokMu.Lock()
	if set := h.byToken[sub.TokenID]; set != nil {
		delete(set, sub)
		if len(set) == 0 {
			delete(h.byToken, sub.TokenID)
		}
	}
	h.tokMu.Unlock()
}

// Unsubscribe removes a subscriber; call it once its connection is gone.
// Calling it twice is harmless.
func (h *Hub) Unsubscribe(sub *Subscriber) {
	t := sub.topic
	now := h.cfg.Now()
	t.mu.Lock()
	_, ok := t.subs[sub]
	if ok {
		delete(t.subs, sub)
		sub.pres.conns--
		sub.pres.lastSeen = now
	}
	t.mu.Unlock()
	if !ok {
		return
	}
	h.dropToken(sub)
	sub.end(CloseShutdown, "unsubscribed")
	h.total.Add(-1)
	h.obs.SubscribersChanged(-1)
}

// Ack records that the subscriber's instance applied version. It takes
// no lock: every subscriber acks every change.
func (h *Hub) Ack(sub *Subscriber, version uint64) {
	p := sub.pres
	if p == nil || version > sub.topic.version.Load() {
		return // a version never sent
	}
	for {
		old := p.acked.Load()
		if version < old {
			return
		}
		if p.acked.CompareAndSwap(old, version) {
			break
		}
	}
	now := h.cfg.Now().UnixNano()
	p.ackedAt.Store(now)
	if version == sub.pushedVersion.Load() {
		if at := sub.pushedAt.Swap(0); at != 0 && now > at {
			lat := time.Duration(now - at)
			p.ackLatency.Store(int64(lat))
			h.obs.AckLatency(lat)
		}
	}
}

// CloseToken ends every subscription that uses the token, and refuses the
// token's future subscriptions on this hub (a revoked token never comes
// back). It returns how many it ended.
func (h *Hub) CloseToken(tokenID, reason string) int {
	h.tokMu.Lock()
	h.revoked[tokenID] = struct{}{}
	subs := make([]*Subscriber, 0, len(h.byToken[tokenID]))
	for s := range h.byToken[tokenID] {
		subs = append(subs, s)
	}
	h.tokMu.Unlock()
	for _, s := range subs {
		s.end(CloseRevoked, reason)
	}
	return len(subs)
}

// CloseAll ends every subscription with going-away, for shutdown.
func (h *Hub) CloseAll() {
	h.tokMu.Lock()
	var subs []*Subscriber
	for _, set := range h.byToken {
		for s := range set {
			subs = append(subs, s)
		}
	}
	h.tokMu.Unlock()
	for _, s := range subs {
		s.end(CloseShutdown, "controller shutting down")
	}
}

// ConnectionsForToken counts live subscriptions that use a token.
func (h *Hub) ConnectionsForToken(tokenID string) int {
	h.tokMu.Lock()
	defer h.tokMu.Unlock()
	return len(h.byToken[tokenID])
}

// Subscribers is the number of live subscriptions on this hub.
func (h *Hub) Subscribers() int { return int(h.total.Load()) }

// Presence is what the hub knows of one instance's subscriptions.
type Presence struct {
	Instance    string
	Conns       int
	LastSeen    time.Time // last connect, disconnect or ack
	ConnectedAt time.Time
	Acked       uint64
	AckedAt     time.Time // zero before the first ack
	AckLatency  time.Duration
}

// Presence lists the instances of service that hold or recently held a
// subscription here, by name, and the number of live subscriptions.
func (h *Hub) Presence(service string) ([]Presence, int) {
	t := h.topic(service, false)
	if t == nil {
		return nil, 0
	}
	t.mu.Lock()
	out := make([]Presence, 0, len(t.presence))
	for name, p := range t.presence {
		v := Presence{Instance: name, Conns: p.conns, LastSeen: p.lastSeen, ConnectedAt: p.connectedAt,
			Acked: p.acked.Load(), AckLatency: time.Duration(p.ackLatency.Load())}
		if at := p.ackedAt.Load(); at != 0 {
			v.AckedAt = time.Unix(0, at).UTC()
			if v.AckedAt.After(v.LastSeen) {
				v.LastSeen = v.AckedAt
			}
		}
		out = append(out, v)
	}
	n := len(t.subs)
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out, n
}

// Sweep forgets the presence of instances disconnected for longer than
// ForgetAfter, so that memory stays bounded as instances come and go.
func (h *Hub) Sweep() {
	cutoff := h.cfg.Now().Add(-h.cfg.ForgetAfter)
	h.mu.RLock()
	ts := make([]*topic, 0, len(h.topics))
	for _, t := range h.topics {
		ts = append(ts, t)
	}
	h.mu.RUnlock()
	for _, t := range ts {
		t.mu.Lock()
		for name, p := range t.presence {
			if p.conns == 0 && p.lastSeen.Before(cutoff) {
				delete(t.presence, name)
			}
		}
		t.mu.Unlock()
	}
}
