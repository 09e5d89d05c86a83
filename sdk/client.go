package sdk

import (
	"github.com/brownout-io/brownout/sdk/wire"

	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brownout-io/brownout/sdk/component"
)

// Client keeps one service instance in step with the controller. Its read
// methods (Enabled, Level, State) never block and never fail; all methods
// are safe for concurrent use.
type Client struct {
	cfg          config
	service      string
	instance     string
	subscribeURL string // without the version parameter
	reportsURL   string
	httpClient   *http.Client
	log          *slog.Logger

	snap atomic.Pointer[snapshot]

	// Counted on callers' hot paths.
	requests atomic.Int64
	errs     atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once

	mu               sync.Mutex // guards the fields below
	base             State      // from the controller, state file or defaults; Flags unmerged
	applied          uint64     // version of base, 0 if none
	epoch            string     // the controller history applied counts in
	learned          map[Level]map[string]bool
	connected        bool
	unreachableSince time.Time
	forced           bool
	force            Level
	finalErr         error
	lastErr          error

	callbacks atomic.Pointer[[]callback]
	cbMu      sync.Mutex // serialises OnChange registrations
	cbSeq     uint64
	notify    chan struct{}

	compMu     sync.Mutex
	components map[string]component.Reporter

	ring        *ring
	reportReady chan struct{}

	connections   atomic.Uint64
	statesApplied atomic.Uint64
	reportsSent   atomic.Uint64
	acked         atomic.Uint64

	breakGlass breakGlass
}

type callback struct {
	id uint64
	fn func(old, new State)
}

// Connect starts a client for one instance of service, talking to the
// controller at baseURL (http://host:port or https://…, optionally with a
// path prefix). It validates its arguments, loads the state file if one is
// configured, and returns at once: the connection is made in the
// background, and until it is, the client serves the state file's state or
// the defaults.
//
// The client runs until Close is called or ctx is cancelled; in both cases
// call Close to wait for its goroutines to end.
func Connect(ctx context.Context, baseURL, service, instance string, opts ...Option) (*Client, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := validName("service", service); err != nil {
		return nil, err
	}
	if err := validName("instance", instance); err != nil {
		return nil, err
	}
	wsURL, postURL, err := controllerURLs(baseURL, service, instance)
	if err != nil {
		return nil, err
	}
	log := cfg.logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With(slog.String(logKeyService, service), slog.String(logKeyInstance, instance))
	hc := cfg.httpClient
	if hc == nil {
		hc = defaultHTTPClient(cfg.tlsConfig)
	}
	if cfg.getenv == nil {
		cfg.getenv = os.Getenv
	}
	if cfg.sampler == nil {
		cfg.sampler = newProcessSampler()
	}

	c := &Client{
		cfg:          cfg,
		service:      service,
		instance:     instance,
		subscribeURL: wsURL,
		reportsURL:   postURL,
		httpClient:   hc,
		log:          log,
		learned:      make(map[Level]map[string]bool),
		notify:       make(chan struct{}, 1),
		components:   make(map[string]component.Reporter),
		ring:         newRing(cfg.reportBuffer),
		reportReady:  make(chan struct{}, 1),
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	c.callbacks.Store(&[]callback{})

	c.base = State{Service: service, Level: cfg.defaultLevel, Flags: cfg.levelFlags[cfg.defaultLevel], Source: SourceDefaults}
	if cfg.stateFile != "" {
		if r, err := loadState(cfg.stateFile, service); err == nil {
			c.base = stateFromFrame(&r.State, SourceFile)
			c.applied = r.State.Version
			c.epoch = r.State.Epoch
			for l, f := range r.LevelFlags {
				if l.Valid() {
					c.learned[l] = f
				}
			}
			log.Info("brownout: serving last-known-good state from file",
				slog.Uint64(logKeyVersion, c.applied), slog.String(logKeyLevel, c.base.Level.String()))
		} else if !errors.Is(err, os.ErrNotExist) {
			log.Warn("brownout: ignoring state file", slog.String(logKeyPath, cfg.stateFile), slog.Any(logKeyError, err))
		}
	}
	c.unreachableSince = cfg.clock.Now()
	c.pollBreakGlass()
	c.mu.Lock()
	c.recomputeLocked()
	c.mu.Unlock()

	c.wg.Add(3)
	go c.runTransport()
	go c.runPoller()
	go c.runDelivery(c.snap.Load())
	if cfg.reportInterval > 0 {
		c.wg.Add(1)
		go c.runReporter()
	}
	return c, nil
}

// Enabled reports whether flag is on in the current state. A flag the state
// does not name falls back to the defaults of WithDefaults, then false. It
// takes no lock and allocates nothing; a nil Client reports false.
func (c *Client) Enabled(flag string) bool {
	if c == nil {
		return false
	}
	return c.snap.Load().state.Flags[flag]
}

// Level returns the level this host serves now. A nil Client reports
// LevelFull.
func (c *Client) Level() Level {
	if c == nil {
		return LevelFull
	}
	return c.snap.Load().state.Level
}

// State returns the current state. Its Flags map is shared and read-only.
func (c *Client) State() State {
	if c == nil {
		return State{}
	}
	return c.snap.Load().state
}

// Err returns the final error that stopped the client from reconnecting
// (wrapping ErrUnauthorized or ErrForbidden), or nil while it keeps trying.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.finalErr
}

// Stats describes the client's connection and reporting.
type Stats struct {
	// Connected reports a live connection on which a state has arrived.
	Connected bool
	// Version is the version of the state applied last.
	Version uint64
	// AckedVersion is the last version acknowledged to the controller.
	AckedVersion uint64
	// Connections counts websocket connections established.
	Connections uint64
	// StatesApplied counts states received and applied.
	StatesApplied uint64
	// ReportsSent counts reports written to the controller.
	ReportsSent uint64
	// ReportsBuffered is how many reports wait for a connection.
	ReportsBuffered int
	// ReportsDropped counts reports discarded because the buffer was full.
	ReportsDropped uint64
	// LastError is why the last connection attempt failed or the last
	// connection ended; nil before the first.
	LastError error
	// UnreachableSince is when the controller was last lost (the last
	// connection dropped, or Connect if none was ever made); zero while a
	// connection is live. Staleness limits count from it.
	UnreachableSince time.Time
}

// Stats returns a snapshot of the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	s := Stats{Connected: c.connected, Version: c.applied, LastError: c.lastErr, UnreachableSince: c.unreachableSince}
	c.mu.Unlock()
	s.AckedVersion = c.acked.Load()
	s.Connections = c.connections.Load()
	s.StatesApplied = c.statesApplied.Load()
	s.ReportsSent = c.reportsSent.Load()
	s.ReportsBuffered, s.ReportsDropped = c.ring.stats()
	return s
}

// OnChange registers fn to be called after every change of the served state
// (level, flags, version or source). Calls come from one goroutine owned by
// the client, in registration order, outside any lock, so fn may call the
// client. Delivery never holds up the connection: if fn is slow, changes
// that happen meanwhile are coalesced and fn next sees the latest state, with
// old always equal to the new of its previous call. A panic in fn is
// recovered and logged. The returned function unregisters fn.
func (c *Client) OnChange(fn func(old, new State)) (remove func()) {
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	c.cbSeq++
	id := c.cbSeq
	cbs := append(append([]callback(nil), *c.callbacks.Load()...), callback{id: id, fn: fn})
	c.callbacks.Store(&cbs)
	return func() {
		c.cbMu.Lock()
		defer c.cbMu.Unlock()
		old := *c.callbacks.Load()
		next := make([]callback, 0, len(old))
		for _, cb := range old {
			if cb.id != id {
				next = append(next, cb)
			}
		}
		c.callbacks.Store(&next)
	}
}

// Register adds a component whose state travels in every report under name
// (1–64 characters, the same rule as service names). Registering a name
// again replaces it. At most component.MaxComponents may be registered.
func (c *Client) Register(name string, r component.Reporter) error {
	if err := validName("component", name); err != nil {
		return err
	}
	if r == nil {
		return invalidf("component %q: nil reporter", name)
	}
	c.compMu.Lock()
	defer c.compMu.Unlock()
	if _, ok := c.components[name]; !ok && len(c.components) >= component.MaxComponents {
		return fmt.Errorf("register %q: %w (max %d)", name, ErrTooManyComponents, component.MaxComponents)
	}
	c.components[name] = r
	return nil
}

// Unregister removes a component registered under name.
func (c *Client) Unregister(name string) {
	c.compMu.Lock()
	defer c.compMu.Unlock()
	delete(c.components, name)
}

// Close stops the client: it closes the connection, stops reporting and
// waits for every goroutine of the client to end, including a callback in
// progress (so a callback must not call Close). Reads keep serving the last
// state. Reports still buffered are dropped. Close is idempotent.
func (c *Client) Close() error {
	c.closed.Do(func() {
		c.cancel()
		c.wg.Wait()
	})
	return nil
}

// recomputeLocked stores the state computed from the current inputs if it
// differs from the one served. c.mu must be held, which orders publications.
func (c *Client) recomputeLocked() {
	now := c.cfg.clock.Now()
	st := c.base
	st.ControllerLevel = c.base.Level
	raw := c.base.Flags
	switch {
	case c.forced:
		st.Level, st.Source = c.force, SourceForced
		raw = c.flagsForLocked(c.force)
	case c.staleLocked(now) && c.cfg.staleness.level > c.base.Level:
		st.Level, st.Source = c.cfg.staleness.level, SourceStale
		raw = c.flagsForLocked(st.Level)
	}
	st.Flags = mergeFlags(c.cfg.defaultFlags, raw)
	if cur := c.snap.Load(); cur != nil && cur.state.same(&st) {
		return
	}
	c.snap.Store(&snapshot{state: st})
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *Client) staleLocked(now time.Time) bool {
	p := c.cfg.staleness
	return p.fall && !c.connected && !c.unreachableSince.IsZero() && now.Sub(c.unreachableSince) >= p.after
}

// flagsForLocked picks the flags for a level chosen on this host: the
// controller's current set if it is at that level, else the last set it sent
// for that level, else the caller's set for it (nil means the defaults).
func (c *Client) flagsForLocked(l Level) map[string]bool {
	if l == c.base.Level && c.base.Source != SourceDefaults {
		return c.base.Flags
	}
	if f, ok := c.learned[l]; ok {
		return f
	}
	return c.cfg.levelFlags[l]
}

func mergeFlags(defaults, flags map[string]bool) map[string]bool {
	switch {
	case len(flags) == 0:
		return defaults
	case len(defaults) == 0:
		return flags
	}
	m := make(map[string]bool, len(defaults)+len(flags))
	maps.Copy(m, defaults)
	maps.Copy(m, flags)
	return m
}

func stateFromFrame(f *wire.Frame, src Source) State {
	return State{
		Service:       f.Service,
		Version:       f.Version,
		Level:         f.Level,
		ComputedLevel: max(0, min(f.ComputedLevel, MaxLevel)),
		Flags:         f.Flags,
		Override:      f.Override,
		Cause:         f.Cause,
		ChangedAt:     f.ChangedAt,
		Source:        src,
	}
}

// runPoller re-reads the break-glass switch and re-evaluates the staleness
// policy every poll interval.
func (c *Client) runPoller() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.pollEvery)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		c.pollBreakGlass()
		c.mu.Lock()
		c.recomputeLocked()
		c.mu.Unlock()
	}
}

// runDelivery calls the OnChange callbacks; see OnChange for its guarantees.
func (c *Client) runDelivery(last *snapshot) {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.notify:
		}
		cur := c.snap.Load()
		if cur == last {
			continue
		}
		for _, cb := range *c.callbacks.Load() {
			c.call(cb.fn, last.state, cur.state)
		}
		last = cur
	}
}

func (c *Client) call(fn func(old, new State), old, new State) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("brownout: OnChange callback panicked", slog.Any(logKeyPanic, r))
		}
	}()
	fn(old, new)
}

// Log attribute keys.
const (
	logKeyService  = "service"
	logKeyInstance = "instance"
	logKeyVersion  = "version"
	logKeyLevel    = "level"
	logKeyPath     = "path"
	logKeyError    = "err"
	logKeyPanic    = "panic"
	logKeyWait     = "retry_in"
	logKeyCode     = "code"
	logKeySource   = "source"
)

func validName(what, s string) error {
	if !wire.ValidName(s) {
		return invalidf("%s name %q: must be %s", what, s, wire.NameRule)
	}
	return nil
}

// controllerURLs derives the subscribe (ws/wss) and report (http/https) URLs
// from the base URL.
func controllerURLs(base, service, instance string) (ws, post string, err error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", "", invalidf("base URL: %v", err)
	}
	if u.Host == "" {
		return "", "", invalidf("base URL %q: no host", base)
	}
	var wsScheme, httpScheme string
	switch strings.ToLower(u.Scheme) {
	case "http", "ws":
		wsScheme, httpScheme = "ws", "http"
	case "https", "wss":
		wsScheme, httpScheme = "wss", "https"
	default:
		return "", "", invalidf("base URL %q: scheme must be http or https", base)
	}
	prefix := strings.TrimSuffix(u.Path, "/")
	q := url.Values{"service": {service}, "instance": {instance}}
	wu := url.URL{Scheme: wsScheme, Host: u.Host, Path: prefix + wire.SubscribePath, RawQuery: q.Encode()}
	pu := url.URL{Scheme: httpScheme, Host: u.Host, Path: prefix + wire.ReportsPath}
	return wu.String(), pu.String(), nil
}

func defaultHTTPClient(tc *tls.Config) *http.Client {
	if tc == nil {
		return http.DefaultClient
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc.Clone()
	return &http.Client{Transport: tr}
}

func newRand(seed *[2]uint64) *rand.Rand {
	if seed != nil {
		return rand.New(rand.NewPCG(seed[0], seed[1]))
	}
	return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
}
