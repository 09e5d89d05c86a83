package web

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/levels"
	"github.com/brownout-io/brownout/web/pages/overview"
	"github.com/brownout-io/brownout/web/pages/service"
	"github.com/brownout-io/brownout/web/ui"
)

// Live updates. Every dashboard page opens one websocket at /live with its
// topic. One goroutine (the hub) watches the controller, renders each
// fragment once per change into a buffer, compares it with the last bytes
// it sent, and hands the changed fragments, shared, to every connection
// whose topic shows them. A connection keeps only the latest pending bytes
// per fragment id, so a slow browser skips intermediate states and never
// holds up the hub; writes have a timeout and a peer that stops reading is
// dropped. A fragment is one element with a stable id; the page script
// replaces the element of the same id.
const (
	// liveMinInterval bounds renders to a few per second however often
	// the controller signals.
	liveMinInterval  = 250 * time.Millisecond
	liveWriteTimeout = 5 * time.Second
	livePing         = 20 * time.Second
	// liveRecheck is how often a connection re-checks that its session's
	// token is still active.
	liveRecheck = 5 * time.Second
	// closeSessionEnded tells the page script to go to the sign-in page
	// rather than reconnect.
	closeSessionEnded = 4401
)

// Topics.
const (
	topicOverview = "overview"
	topicGlobal   = "global"
	topicService  = "service:"
)

type frag struct {
	id   string
	html []byte
}

type liveConn struct {
	topic   string
	admin   bool
	tokenID string
	session string
	// full asks the hub for every fragment of the topic: set on connect,
	// since the page may be older than the hub's last render.
	full atomic.Bool

	mu      sync.Mutex
	pending []frag
	ready   chan struct{}
	done    chan struct{}
	once    sync.Once
}

// offer queues fragments, replacing pending ones with the same id. It
// never blocks.
func (c *liveConn) offer(fs []frag) {
	if len(fs) == 0 {
		return
	}
	c.mu.Lock()
	for _, f := range fs {
		c.pending = slices.DeleteFunc(c.pending, func(p frag) bool { return p.id == f.id })
		c.pending = append(c.pending, f)
	}
	c.mu.Unlock()
	select {
	case c.ready <- struct{}{}:
	default:
	}
}

func (c *liveConn) take() []frag {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending
	c.pending = nil
	return p
}

func (c *liveConn) end() { c.once.Do(func() { close(c.done) }) }

type hub struct {
	h    *handler
	kick chan struct{}

	mu      sync.Mutex
	conns   map[*liveConn]struct{}
	running bool

	// Owned by the run goroutine.
	banner  [2][]byte // viewer, admin
	summary []byte
	cards   map[string][]byte
	order   []string
	svc     map[string]map[string][]byte
}

func newHub(h *handler) *hub {
	return &hub{h: h, kick: make(chan struct{}, 1), conns: map[*liveConn]struct{}{}}
}

func (hb *hub) poke() {
	select {
	case hb.kick <- struct{}{}:
	default:
	}
}

// register adds a connection and starts the hub if it was idle.
func (hb *hub) register(c *liveConn) {
	c.full.Store(true)
	hb.mu.Lock()
	hb.conns[c] = struct{}{}
	if !hb.running {
		hb.running = true
		go hb.run()
	}
	hb.mu.Unlock()
	hb.poke()
}

func (hb *hub) unregister(c *liveConn) {
	hb.mu.Lock()
	delete(hb.conns, c)
	hb.mu.Unlock()
	hb.poke()
}

// closeSession ends the live connections of a session.
func (hb *hub) closeSession(id string) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	for c := range hb.conns {
		if c.session == id {
			c.end()
		}
	}
}

// closeToken ends the live connections opened with a token.
func (hb *hub) closeToken(tokenID string) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	for c := range hb.conns {
		if c.tokenID == tokenID {
			c.end()
		}
	}
}

func (hb *hub) snapshot() []*liveConn {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	out := make([]*liveConn, 0, len(hb.conns))
	for c := range hb.conns {
		out = append(out, c)
	}
	return out
}

// run renders and fans out until the last connection has gone. It is the
// only goroutine that touches the render caches.
func (hb *hub) run() {
	watch, stop := hb.h.d.Controller.Watch()
	defer stop()
	hb.banner, hb.summary, hb.cards, hb.order, hb.svc = [2][]byte{}, nil, map[string][]byte{}, nil, map[string]map[string][]byte{}
	idle := time.NewTimer(time.Minute)
	defer idle.Stop()
	for {
		hb.mu.Lock()
		if len(hb.conns) == 0 {
			hb.running = false
			hb.mu.Unlock()
			return
		}
		conns := make([]*liveConn, 0, len(hb.conns))
		for c := range hb.conns {
			conns = append(conns, c)
		}
		hb.mu.Unlock()

		hb.renderAndSend(conns)

		idle.Reset(time.Minute)
		select {
		case <-watch:
		case <-hb.kick:
		case <-idle.C:
		}
		time.Sleep(liveMinInterval)
	}
}

func (hb *hub) renderAndSend(conns []*liveConn) {
	ctx := context.Background()
	h := hb.h
	needOverview := false
	services := map[string]bool{}
	for _, c := range conns {
		switch {
		case c.topic == topicOverview:
			needOverview = true
		case strings.HasPrefix(c.topic, topicService):
			services[strings.TrimPrefix(c.topic, topicService)] = true
		}
	}

	// The banner, in its viewer and admin variants.
	em := h.d.Controller.ActiveEmergency()
	var newBanner [2][]byte
	for i := range newBanner {
		var buf bytes.Buffer
		_ = ui.Banner(em, i == 1, "").Render(ctx, &buf)
		newBanner[i] = buf.Bytes()
	}
	bannerChanged := !bytes.Equal(newBanner[0], hb.banner[0]) || !bytes.Equal(newBanner[1], hb.banner[1])
	hb.banner = newBanner

	// The overview: summary, cards, and the whole list when the order or
	// the set of services changed.
	var ovChanged []frag
	var ovAll func() []frag
	if needOverview {
		views := h.services()
		cards := make([]overview.Card, len(views))
		order := make([]string, len(views))
		seen := make(map[string]struct{}, len(views))
		for i, v := range views {
			cards[i] = overview.CardOf(v, h.sparks.svgs(ctx, v.Name, levels.Thresholds(v.Thresholds), true))
			order[i] = v.Name
			seen[v.Name] = struct{}{}
		}
		h.sparks.retain(seen)
		next := make(map[string][]byte, len(cards))
		var changedCards []frag
		for _, c := range cards {
			var buf bytes.Buffer
			_ = overview.CardItem(c).Render(ctx, &buf)
			b := buf.Bytes()
			if !bytes.Equal(b, hb.cards[c.Name]) {
				changedCards = append(changedCards, frag{id: overview.CardID(c.Name), html: b})
			}
			next[c.Name] = b
		}
		var sb bytes.Buffer
		_ = overview.SummaryBar(overview.SummaryOf(views)).Render(ctx, &sb)
		summaryChanged := !bytes.Equal(sb.Bytes(), hb.summary)
		hb.summary = sb.Bytes()
		orderChanged := !slices.Equal(order, hb.order)
		hb.cards, hb.order = next, order
		list := func() frag {
			var buf bytes.Buffer
			buf.WriteString(overview.ListOpen)
			for _, n := range order {
				buf.Write(next[n])
			}
			if len(order) == 0 {
				buf.WriteString(overview.EmptyItem)
			}
			buf.WriteString(overview.ListClose)
			return frag{id: overview.ListID, html: buf.Bytes()}
		}
		if summaryChanged {
			ovChanged = append(ovChanged, frag{id: overview.SummaryID, html: hb.summary})
		}
		if orderChanged {
			ovChanged = append(ovChanged, list())
		} else {
			ovChanged = append(ovChanged, changedCards...)
		}
		ovAll = func() []frag { return []frag{{id: overview.SummaryID, html: hb.summary}, list()} }
	} else {
		hb.cards, hb.order, hb.summary = map[string][]byte{}, nil, nil
	}

	// Service pages being watched.
	svcChanged := map[string][]frag{}
	svcAll := map[string][]frag{}
	for name := range hb.svc {
		if !services[name] {
			delete(hb.svc, name)
		}
	}
	for name := range services {
		v, err := h.d.Controller.ServicePage(name, service.MaxInstances)
		if err != nil {
			continue
		}
		st := service.StatusOf(v)
		old := hb.svc[name]
		cur := map[string][]byte{}
		var all, changed []frag
		var b1, b2 bytes.Buffer
		_ = service.StatusFragment(st).Render(ctx, &b1)
		_ = service.Instances(st).Render(ctx, &b2)
		cur[service.StatusID], cur[service.InstancesID] = b1.Bytes(), b2.Bytes()
		for _, id := range []string{service.StatusID, service.InstancesID} {
			f := frag{id: id, html: cur[id]}
			all = append(all, f)
			if !bytes.Equal(cur[id], old[id]) {
				changed = append(changed, f)
			}
		}
		hb.svc[name] = cur
		svcChanged[name], svcAll[name] = changed, all
	}

	for _, c := range conns {
		full := c.full.Swap(false)
		variant := 0
		if c.admin {
			variant = 1
		}
		var out []frag
		if full || bannerChanged {
			out = append(out, frag{id: "banner", html: hb.banner[variant]})
		}
		switch {
		case c.topic == topicOverview:
			if full {
				out = append(out, ovAll()...)
			} else {
				out = append(out, ovChanged...)
			}
		case strings.HasPrefix(c.topic, topicService):
			name := strings.TrimPrefix(c.topic, topicService)
			if full {
				out = append(out, svcAll[name]...)
			} else {
				out = append(out, svcChanged[name]...)
			}
		}
		c.offer(out)
	}
}

// live is the dashboard's websocket: it sends HTML fragments, never reads
// application data.
func (h *handler) live(w http.ResponseWriter, r *http.Request) {
	p, sess, ok := h.principalOf(r)
	if !ok {
		h.plainError(w, http.StatusUnauthorized, "sign in first")
		return
	}
	topic := r.URL.Query().Get("topic")
	switch {
	case topic == topicOverview, topic == topicGlobal:
	case strings.HasPrefix(topic, topicService) && brownout.ValidName(strings.TrimPrefix(topic, topicService)):
	default:
		h.plainError(w, http.StatusBadRequest, "unknown topic")
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OriginPatterns:  h.d.OriginPatterns,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept has answered (bad handshake, foreign origin)
	}
	defer c.CloseNow()
	ctx := c.CloseRead(r.Context())

	lc := &liveConn{topic: topic, admin: p.IsAdmin(), tokenID: p.TokenID, session: sess.ID, ready: make(chan struct{}, 1), done: make(chan struct{})}
	h.hub.register(lc)
	defer h.hub.unregister(lc)
	// The session was checked before the upgrade; a revocation since then
	// may have run its close before this connection was registered.
	// Revocation drops the token first and closes registered connections
	// second, so checking again now leaves no gap.
	if _, ok := h.sessionPrincipal(ctx, sess); !ok {
		_ = c.Close(closeSessionEnded, "session ended")
		return
	}

	recheck := time.NewTicker(liveRecheck)
	defer recheck.Stop()
	ping := time.NewTicker(livePing)
	defer ping.Stop()
	var buf bytes.Buffer
	for {
		select {
		case <-ctx.Done():
			return
		case <-lc.done:
			_ = c.Close(closeSessionEnded, "session ended")
			return
		case <-recheck.C:
			if _, ok := h.sessionPrincipal(ctx, sess); !ok {
				_ = c.Close(closeSessionEnded, "session ended")
				return
			}
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, liveWriteTimeout)
			err := c.Ping(pctx)
			cancel()
			if err != nil {
				return
			}
		case <-lc.ready:
			fs := lc.take()
			if len(fs) == 0 {
				continue
			}
			buf.Reset()
			for _, f := range fs {
				buf.Write(f.html)
			}
			wctx, cancel := context.WithTimeout(ctx, liveWriteTimeout)
			err := c.Write(wctx, websocket.MessageText, buf.Bytes())
			cancel()
			if err != nil {
				return
			}
		}
	}
}
