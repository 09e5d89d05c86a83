package sdk

import (
	"crypto/tls"
	"log/slog"
	"maps"
	"net/http"
	"time"
)

// An Option configures a Client at Connect.
type Option func(*config) error

// StalenessPolicy says what a client serves once the controller has been
// unreachable for a while: HoldLast (the zero value) or FallTo.
type StalenessPolicy struct {
	after time.Duration
	level Level
	fall  bool
}

// HoldLast is the default policy: serve the last state however old it is.
func HoldLast() StalenessPolicy { return StalenessPolicy{} }

// FallTo serves at least level l once the controller has been unreachable for
// after: a client already at a higher level stays there. The clock starts
// when the last connection drops, or at Connect if none was ever made. The flags served are those of the last flag set the controller sent
// for l (remembered in memory and in the state file), else the set given with
// WithLevelFlags for l, else the defaults of WithDefaults.
func FallTo(l Level, after time.Duration) StalenessPolicy {
	return StalenessPolicy{after: after, level: l, fall: true}
}

// clock is the time source, replaceable in tests.
type clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

type config struct {
	token          string
	defaultLevel   Level
	defaultFlags   map[string]bool
	levelFlags     map[Level]map[string]bool
	reportInterval time.Duration
	reportBuffer   int
	stateFile      string
	staleness      StalenessPolicy
	logger         *slog.Logger
	httpClient     *http.Client
	tlsConfig      *tls.Config
	forceFile      string
	forceEnv       string
	retryAfter     time.Duration
	onError        func(error)

	// Tunables that tests shorten; not exported because the protocol fixes
	// them.
	clock        clock
	getenv       func(string) string
	pollEvery    time.Duration
	pingEvery    time.Duration
	deadAfter    time.Duration
	dialTimeout  time.Duration
	writeTimeout time.Duration
	backoff      backoffConfig
	sampler      sampler
	seed         *[2]uint64
}

func defaultConfig() config {
	return config{
		reportInterval: 5 * time.Second,
		reportBuffer:   120,
		forceEnv:       "BROWNOUT_FORCE_LEVEL",
		retryAfter:     30 * time.Second,
		clock:          systemClock{},
		pollEvery:      time.Second,
		pingEvery:      15 * time.Second,
		deadAfter:      45 * time.Second,
		dialTimeout:    10 * time.Second,
		writeTimeout:   10 * time.Second,
		backoff:        defaultBackoff,
	}
}

// WithToken sets the bearer token (an "sdk" token for this service).
func WithToken(token string) Option {
	return func(c *config) error { c.token = token; return nil }
}

// WithDefaults sets what the client serves before it knows better: level,
// and flag values. The flags are also the fallback for any flag the
// controller does not mention. The map is copied.
func WithDefaults(level Level, flags map[string]bool) Option {
	return func(c *config) error {
		if !level.Valid() {
			return invalidf("default level %d out of range 0-3", level)
		}
		c.defaultLevel = level
		c.defaultFlags = maps.Clone(flags)
		return nil
	}
}

// WithLevelFlags gives the flag set to serve at level l when the level comes
// from this host (staleness policy, break-glass switch, defaults) and the
// controller has never sent a flag set for it. The map is copied.
func WithLevelFlags(l Level, flags map[string]bool) Option {
	return func(c *config) error {
		if !l.Valid() {
			return invalidf("level %d out of range 0-3", l)
		}
		if c.levelFlags == nil {
			c.levelFlags = make(map[Level]map[string]bool)
		}
		c.levelFlags[l] = maps.Clone(flags)
		return nil
	}
}

// WithReportInterval sets how often the client reports (default 5s; at
// least 100ms). A negative interval disables reporting.
func WithReportInterval(d time.Duration) Option {
	return func(c *config) error {
		if d >= 0 && d < 100*time.Millisecond {
			return invalidf("report interval %v below 100ms", d)
		}
		c.reportInterval = d
		return nil
	}
}

// WithReportBuffer sets how many reports are kept while disconnected
// (default 120, ten minutes at the default interval). Beyond it the oldest
// are dropped and counted in Stats().ReportsDropped.
func WithReportBuffer(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return invalidf("report buffer %d below 1", n)
		}
		c.reportBuffer = n
		return nil
	}
}

// A LoadView says whose CPU and memory the client reports.
type LoadView uint8

const (
	// ProcessLoad (the default) reports this process: its CPU time over
	// the CPU it may use (GOMAXPROCS, which follows a container's quota)
	// and its resident memory over the cgroup's memory limit, else the
	// machine's memory. Use it when each instance is its own process or
	// container: the controller then sees each instance's own pressure.
	ProcessLoad LoadView = iota
	// HostLoad reports the whole host, as the seed's psutil view did: busy
	// share of all CPUs and used share of the machine's memory. Use it when
	// the instance stands for its machine (one service per VM), or when
	// other processes on the host (a sidecar, a database) are what
	// exhausts it. It does not see container limits.
	HostLoad
)

// WithLoadView chooses between ProcessLoad (default) and HostLoad.
func WithLoadView(v LoadView) Option {
	return func(c *config) error {
		switch v {
		case ProcessLoad:
			c.sampler = nil
		case HostLoad:
			c.sampler = &hostSampler{}
		default:
			return invalidf("load view %d: want ProcessLoad or HostLoad", v)
		}
		return nil
	}
}

// WithStateFile persists every state applied from the controller to path
// (atomically: temporary file, fsync, rename) and loads it at Connect, so
// that a process started while the controller is unreachable serves the
// last-known-good state instead of the defaults. The SDK creates the
// file's directory (mode 0700) if it does not exist; a path it cannot
// write is logged and the client carries on without persisting.
func WithStateFile(path string) Option {
	return func(c *config) error { c.stateFile = path; return nil }
}

// WithStalenessPolicy sets what to serve after a long outage; see HoldLast
// and FallTo.
func WithStalenessPolicy(p StalenessPolicy) Option {
	return func(c *config) error {
		if p.fall && (p.after <= 0 || !p.level.Valid()) {
			return invalidf("staleness policy needs a positive duration and a level 0-3")
		}
		c.staleness = p
		return nil
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { c.logger = l; return nil }
}

// WithHTTPClient sets the HTTP client used for the websocket handshake and
// POST requests. Its Timeout, if any, bounds the handshake only.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) error { c.httpClient = hc; return nil }
}

// WithTLSConfig sets the TLS configuration for https/wss controllers. It is
// ignored when WithHTTPClient is given.
func WithTLSConfig(tc *tls.Config) Option {
	return func(c *config) error { c.tlsConfig = tc; return nil }
}

// WithForceFile names a break-glass file. While it exists and holds a level
// ("0"–"3" or a level name), that level is forced on this host; an empty or
// missing file forces nothing. It is polled every second. The environment
// variable BROWNOUT_FORCE_LEVEL, if set, takes precedence.
func WithForceFile(path string) Option {
	return func(c *config) error { c.forceFile = path; return nil }
}

// WithRetryAfter sets the Retry-After value of responses shed by Shed
// (default 30s).
func WithRetryAfter(d time.Duration) Option {
	return func(c *config) error {
		if d < time.Second {
			return invalidf("retry-after %v below 1s", d)
		}
		c.retryAfter = d
		return nil
	}
}

// WithErrorHandler is called once, from the client's goroutine, with the
// final error (ErrUnauthorized or ErrForbidden wrapped) that stops it from
// reconnecting.
func WithErrorHandler(fn func(error)) Option {
	return func(c *config) error { c.onError = fn; return nil }
}
