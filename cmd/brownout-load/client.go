package main

import (
	"github.com/brownout-io/brownout/sdk/wire"

	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// subprotocol is the push protocol's websocket subprotocol.
const subprotocol = wire.Subprotocol

// fleet is a set of subscribers over one endpoint (the controller or the
// baseline broadcaster). The same code drives both, so that the two are
// measured identically.
type fleet struct {
	base     string // ws://host:port
	services []string
	tokens   map[string][]string // service → tokens to spread connections over
	hc       *http.Client
	subs     []*subscriber

	// change tracking (see arm and hit)
	change  atomic.Int64 // id of the armed change; 0 when none
	targets []atomic.Uint64
	pending atomic.Int64
	done    chan struct{}

	// raw makes each dial keep its socket (subscriber.raw), so that pump
	// can write pre-encoded report frames to it directly.
	raw bool

	frames    atomic.Int64
	errFrames atomic.Int64
	wentBack  atomic.Int64 // frames older than the subscriber's version

	// reconnect bookkeeping (storm)
	reconnect bool
	dials     *dialLog
	backoff   backoffConfig
}

// subscriber is one websocket connection with the state it last applied.
type subscriber struct {
	f        *fleet
	idx      int
	svc      int
	instance string
	token    string
	// base and replica: the controller replica this subscriber uses.
	base    string
	replica int

	conn      atomic.Pointer[websocket.Conn]
	raw       atomic.Pointer[rawConn] // with fleet.raw: conn's socket
	version   atomic.Uint64           // last version received and acked
	hitChange atomic.Int64            // last change this subscriber counted for
	hitAt     atomic.Int64            // unix nanos when it applied the armed change
	sessions  atomic.Int64            // successful connections so far
	sessionAt atomic.Int64            // unix nanos of the first frame on the latest session
}

func newFleet(base string, services []string, tokens map[string][]string, n int) *fleet {
	return newFleetRange(base, services, tokens, 0, n)
}

// newFleetRange is subscribers lo..hi-1 of a fleet: each has the service,
// instance and token it would have in the whole fleet.
func newFleetRange(base string, services []string, tokens map[string][]string, lo, hi int) *fleet {
	f := &fleet{
		base:     base,
		services: services,
		tokens:   tokens,
		targets:  make([]atomic.Uint64, len(services)),
		hc:       &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext, MaxIdleConnsPerHost: 64}},
	}
	for i := lo; i < hi; i++ {
		svc := i % len(services)
		s := &subscriber{f: f, idx: i, svc: svc, instance: "i-" + strconv.Itoa(i)}
		if toks := tokens[services[svc]]; len(toks) > 0 {
			s.token = toks[(i/len(services))%len(toks)]
		}
		f.subs = append(f.subs, s)
	}
	return f
}

func (s *subscriber) url() string {
	q := url.Values{}
	q.Set("service", s.f.services[s.svc])
	q.Set("instance", s.instance)
	if v := s.version.Load(); v > 0 {
		q.Set("version", strconv.FormatUint(v, 10))
	}
	base := s.base
	if base == "" {
		base = s.f.base
	}
	return base + wire.SubscribePath + "?" + q.Encode()
}

func (s *subscriber) dial(ctx context.Context) (*websocket.Conn, error) {
	h := http.Header{}
	if s.token != "" {
		h.Set("Authorization", "Bearer "+s.token)
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	hc := s.f.hc
	var sock net.Conn
	if s.f.raw {
		// A transport of its own dials exactly this connection's socket.
		d := &net.Dialer{Timeout: 10 * time.Second}
		hc = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			sock = c
			return c, err
		}}}
	}
	c, resp, err := websocket.Dial(dctx, s.url(), &websocket.DialOptions{
		HTTPClient:      hc,
		HTTPHeader:      h,
		Subprotocols:    []string{subprotocol},
		CompressionMode: websocket.CompressionDisabled,
	})
	if resp != nil && resp.Body != nil && err != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(wire.MaxServerFrame)
	if sock != nil {
		s.raw.Store(&rawConn{ws: c, sock: sock})
	}
	return c, nil
}

// connectAll dials every subscriber with at most par dials in flight and
// starts its reader. It returns the number that failed.
func (f *fleet) connectAll(ctx context.Context, par int) (failed int, took time.Duration) {
	start := time.Now()
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	var bad atomic.Int64
	for _, s := range f.subs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			bad.Add(1)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := s.dial(ctx)
			if err != nil {
				bad.Add(1)
				if f.reconnect {
					go s.run(ctx, nil)
				}
				return
			}
			go s.run(ctx, c)
		}()
	}
	wg.Wait()
	return int(bad.Load()), time.Since(start)
}

// run reads frames and acks them. Without reconnect it ends with the
// connection; with reconnect it dials again with capped exponential
// backoff and full jitter until ctx ends.
func (s *subscriber) run(ctx context.Context, c *websocket.Conn) {
	var b *backoff
	if s.f.reconnect {
		b = newBackoff(s.f.backoff, rand.New(rand.NewPCG(uint64(s.idx), uint64(time.Now().UnixNano()))))
	}
	for {
		if c != nil {
			start := time.Now()
			s.session(ctx, c)
			if b != nil && time.Since(start) > s.f.backoff.stable {
				b.reset()
			}
		}
		if b == nil || ctx.Err() != nil {
			return
		}
		t := time.NewTimer(b.next())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if s.f.dials != nil {
			s.f.dials.attempt()
		}
		var err error
		c, err = s.dial(ctx)
		if err != nil {
			c = nil
			continue
		}
		if s.f.dials != nil {
			s.f.dials.success()
		}
	}
}

func (s *subscriber) session(ctx context.Context, c *websocket.Conn) {
	s.conn.Store(c)
	s.sessions.Add(1)
	first := true
	defer func() {
		s.conn.CompareAndSwap(c, nil)
		c.CloseNow()
	}()
	ack := make([]byte, 0, 48)
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			return
		}
		s.f.frames.Add(1)
		v, ok := frameVersion(data)
		if !ok {
			s.f.errFrames.Add(1)
			continue
		}
		ack = wire.AppendAck(ack[:0], v)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = c.Write(wctx, websocket.MessageText, ack)
		cancel()
		if err != nil {
			return
		}
		if first {
			s.sessionAt.Store(time.Now().UnixNano())
			first = false
		}
		s.applied(v)
	}
}

// applied records that version v was received and acked, and counts the
// subscriber for the armed change when v is past its service's target.
func (s *subscriber) applied(v uint64) {
	if old := s.version.Load(); v < old {
		s.f.wentBack.Add(1)
		return // never move backwards: a late frame of an older version
	}
	s.version.Store(v)
	f := s.f
	id := f.change.Load()
	if id == 0 || v <= f.targets[s.svc].Load() {
		return
	}
	if prev := s.hitChange.Load(); prev == id || !s.hitChange.CompareAndSwap(prev, id) {
		return
	}
	s.hitAt.Store(time.Now().UnixNano())
	if f.pending.Add(-1) == 0 {
		close(f.done)
	}
}

// frameVersion extracts the version of a state or unchanged frame without
// a full JSON decode (the load tool shares the CPU with the controller).
func frameVersion(data []byte) (uint64, bool) {
	if !bytes.Contains(data, []byte(`"type":"`+wire.TypeState+`"`)) && !bytes.Contains(data, []byte(`"type":"`+wire.TypeUnchanged+`"`)) {
		return 0, false
	}
	i := bytes.Index(data, []byte(`"version":`))
	if i < 0 {
		return 0, false
	}
	i += len(`"version":`)
	j := i
	for j < len(data) && data[j] >= '0' && data[j] <= '9' {
		j++
	}
	v, err := strconv.ParseUint(string(data[i:j]), 10, 64)
	return v, err == nil
}

// arm prepares change id: the subscribers of every service with
// affected[svc] must move past version from[svc]. It returns how many are
// waited for.
func (f *fleet) arm(id int64, affected []bool, from []uint64) int {
	n := 0
	for i := range f.targets {
		if affected[i] {
			f.targets[i].Store(from[i])
		} else {
			f.targets[i].Store(^uint64(0))
		}
	}
	for _, s := range f.subs {
		if affected[s.svc] {
			n++
		}
	}
	f.pending.Store(int64(n))
	f.done = make(chan struct{})
	if n == 0 {
		close(f.done)
	}
	f.change.Store(id)
	return n
}

// await waits for the armed change and returns when the last subscriber
// applied it, and the per-subscriber apply times relative to t0.
func (f *fleet) await(ctx context.Context, id int64, t0 time.Time, timeout time.Duration) (last time.Duration, each []time.Duration, err error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-f.done:
	case <-t.C:
		err = errors.New("timed out: " + strconv.FormatInt(f.pending.Load(), 10) + " subscribers never applied the change")
	case <-ctx.Done():
		err = ctx.Err()
	}
	f.change.Store(0)
	for _, s := range f.subs {
		if s.hitChange.Load() != id {
			continue
		}
		d := time.Duration(s.hitAt.Load() - t0.UnixNano())
		each = append(each, d)
		if d > last {
			last = d
		}
	}
	return last, each, err
}

// spread assigns subscriber i to replica i mod len(bases) (ws:// URLs).
func (f *fleet) spread(bases []string) {
	for _, s := range f.subs {
		s.replica = s.idx % len(bases)
		s.base = bases[s.replica]
	}
}

// lastOnOthers is, for change id, the latest time a subscriber of any
// replica but from applied it: a change made on replica from reaching the
// last subscriber elsewhere.
func (f *fleet) lastOnOthers(id int64, t0 time.Time, from int) (last time.Duration, ok bool) {
	for _, s := range f.subs {
		if s.replica == from || s.hitChange.Load() != id {
			continue
		}
		if d := time.Duration(s.hitAt.Load() - t0.UnixNano()); d > last {
			last, ok = d, true
		}
	}
	return last, ok
}

// converged reports whether every subscriber of each service is on the
// same version, and returns those versions.
func (f *fleet) converged() (bool, []uint64) {
	vs := make([]uint64, len(f.services))
	seen := make([]bool, len(f.services))
	ok := true
	for _, s := range f.subs {
		v := s.version.Load()
		if v == 0 {
			ok = false
		}
		if !seen[s.svc] {
			vs[s.svc], seen[s.svc] = v, true
		} else if vs[s.svc] != v {
			ok = false
			if v > vs[s.svc] {
				vs[s.svc] = v
			}
		}
	}
	return ok, vs
}

// versionRange is, per service, the oldest and newest version its
// subscribers here are on (seen: it has some here), and whether every
// subscriber has a version and each service's are all the same.
func (f *fleet) versionRange() (ok bool, lo, hi []uint64, seen []bool) {
	lo, hi, seen = make([]uint64, len(f.services)), make([]uint64, len(f.services)), make([]bool, len(f.services))
	ok = true
	for _, s := range f.subs {
		v := s.version.Load()
		if v == 0 {
			ok = false
		}
		if !seen[s.svc] {
			lo[s.svc], hi[s.svc], seen[s.svc] = v, v, true
			continue
		}
		lo[s.svc], hi[s.svc] = min(lo[s.svc], v), max(hi[s.svc], v)
	}
	for i := range lo {
		if seen[i] && lo[i] != hi[i] {
			ok = false
		}
	}
	return ok, lo, hi, seen
}

// describe is, per replica and service, the range of versions its
// subscribers are on ("-" for a subscriber without one).
func (f *fleet) describe() string {
	type key struct{ replica, svc int }
	lo, hi, none := map[key]uint64{}, map[key]uint64{}, map[key]int{}
	replicas := 0
	for _, s := range f.subs {
		k := key{s.replica, s.svc}
		replicas = max(replicas, s.replica+1)
		v := s.version.Load()
		if v == 0 {
			none[k]++
			continue
		}
		if l, ok := lo[k]; !ok || v < l {
			lo[k] = v
		}
		hi[k] = max(hi[k], v)
	}
	var b strings.Builder
	for r := range replicas {
		fmt.Fprintf(&b, "replica %d:", r)
		for svc := range f.services {
			k := key{r, svc}
			fmt.Fprintf(&b, " %s v%d-%d", f.services[svc], lo[k], hi[k])
			if none[k] > 0 {
				fmt.Fprintf(&b, " (%d without a version)", none[k])
			}
		}
		b.WriteString("; ")
	}
	return b.String()
}

// waitConverged polls until converged or timeout.
func (f *fleet) waitConverged(ctx context.Context, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if ok, _ := f.converged(); ok {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

func (f *fleet) connected() int {
	n := 0
	for _, s := range f.subs {
		if s.conn.Load() != nil {
			n++
		}
	}
	return n
}

// closeAll closes every connection (normal closure, not waited for long).
func (f *fleet) closeAll() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, s := range f.subs {
		c := s.conn.Load()
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.CloseNow()
		}()
	}
	wg.Wait()
	f.hc.CloseIdleConnections()
}

// backoffConfig is the SDK's reconnect policy: capped exponential backoff
// with full jitter, reset after a stable period.
type backoffConfig struct {
	initial, max, stable time.Duration
}

var sdkBackoff = backoffConfig{initial: 500 * time.Millisecond, max: 30 * time.Second, stable: 30 * time.Second}

type backoff struct {
	cfg     backoffConfig
	rnd     *rand.Rand
	attempt int
}

func newBackoff(cfg backoffConfig, rnd *rand.Rand) *backoff { return &backoff{cfg: cfg, rnd: rnd} }

func (b *backoff) next() time.Duration {
	d := b.cfg.initial
	for i := 0; i < b.attempt && d < b.cfg.max; i++ {
		d *= 2
	}
	d = min(d, b.cfg.max)
	b.attempt++
	if d <= 0 {
		return 0
	}
	return time.Duration(b.rnd.Int64N(int64(d)))
}

func (b *backoff) reset() { b.attempt = 0 }

// dialLog counts connection attempts and successes per 100 ms bucket.
type dialLog struct {
	start     time.Time
	mu        sync.Mutex
	attempts  map[int64]int
	successes map[int64]int
}

func newDialLog(start time.Time) *dialLog {
	return &dialLog{start: start, attempts: map[int64]int{}, successes: map[int64]int{}}
}

func (d *dialLog) bucket() int64 { return int64(time.Since(d.start) / (100 * time.Millisecond)) }

func (d *dialLog) attempt() {
	d.mu.Lock()
	d.attempts[d.bucket()]++
	d.mu.Unlock()
}

func (d *dialLog) success() {
	d.mu.Lock()
	d.successes[d.bucket()]++
	d.mu.Unlock()
}

func (d *dialLog) peaks() (attempts, successes int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, n := range d.attempts {
		attempts = max(attempts, n)
	}
	for _, n := range d.successes {
		successes = max(successes, n)
	}
	return attempts, successes
}
