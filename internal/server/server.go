// Package server is the controller's HTTP face: the JSON API under
// /api/v1, the subscriber websocket, health probes, Prometheus metrics and
// the OpenAPI document. Handlers translate between HTTP and the controller;
// they hold no state of their own.
package server

import (
	"github.com/brownout-io/brownout/sdk/wire"

	"context"
	"embed"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/auth"
	"github.com/brownout-io/brownout/internal/controller"
	"github.com/brownout-io/brownout/internal/health"
	"github.com/brownout-io/brownout/internal/hub"
	"github.com/brownout-io/brownout/internal/netlimit"
	"github.com/brownout-io/brownout/internal/notify"
)

// HistoryStore is what the history endpoints read.
type HistoryStore interface {
	ListAudit(ctx context.Context, f brownout.Filter) (brownout.Page[brownout.AuditEntry], error)
	ListLevelChanges(ctx context.Context, f brownout.Filter) (brownout.Page[brownout.LevelChange], error)
	QuerySamples(ctx context.Context, service string, from, to time.Time, step time.Duration) ([]brownout.SamplePoint, error)
	// GetOverride returns an override, active or not; ENOTFOUND when unknown.
	GetOverride(ctx context.Context, id string) (brownout.Override, error)
	Ping(ctx context.Context) error
}

// ReplicaSet lists the controller replicas sharing this one's store; a
// single-replica controller lists itself.
type ReplicaSet interface {
	Replicas(ctx context.Context) ([]brownout.Replica, error)
}

// Config tunes the server. Zero values take the defaults.
type Config struct {
	// Ready, when set, is checked by /readyz besides the store: a replica's
	// change feed. Its error message is shown.
	Ready func(ctx context.Context) error
	// Replicas, when set, answers GET /api/v1/replicas.
	Replicas ReplicaSet
	// Notify, when set, serves webhooks and dead letters.
	Notify *notify.Notifier

	// MaxBody bounds request bodies (1 MiB).
	MaxBody int64
	// MaxFrame bounds websocket frames from clients (64 KiB).
	MaxFrame int64
	// WriteTimeout bounds one websocket write (10 s).
	WriteTimeout time.Duration
	// PingInterval is how often the server pings subscribers (15 s).
	PingInterval time.Duration
	// MaxConnsPerToken bounds concurrent subscriptions per token (10,000).
	MaxConnsPerToken int
	// AuthFailBurst and AuthFailEvery throttle failed authentication per
	// client address (20 failures, then one per second).
	AuthFailBurst int
	AuthFailEvery time.Duration
	// ReportLimits bound components per report, metrics per component and
	// their name lengths (the protocol's defaults).
	ReportLimits health.Limits
	// MaxSubscribers and MaxSubscribersPerAddr cap concurrent websocket
	// subscribers in total and per client address (10,000 and 1,000; a
	// negative value: no cap).
	MaxSubscribers        int
	MaxSubscribersPerAddr int
	// MaxRequestsPerAddr caps concurrent requests (websockets included)
	// per real client address behind a trusted proxy (1,024; negative: no
	// cap). Direct peers are capped per connection by netlimit.Listener.
	MaxRequestsPerAddr int
	// Proxies are the peers trusted to name their client in
	// X-Forwarded-For or X-Real-IP; throttles and caps key on that client.
	Proxies netlimit.Proxies
	// OriginPatterns are extra hosts allowed to open websockets from a
	// browser (the request's own host always is).
	OriginPatterns []string
	// HSTSMaxAge, when positive, sends Strict-Transport-Security with this
	// max-age on every answer over TLS (the controller serving TLS itself).
	HSTSMaxAge time.Duration
	// Now is the clock.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.MaxBody <= 0 {
		c.MaxBody = 1 << 20
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = wire.MaxClientFrame
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 15 * time.Second
	}
	if c.MaxConnsPerToken <= 0 {
		c.MaxConnsPerToken = 10_000
	}
	c.MaxSubscribers = capDefault(c.MaxSubscribers, 10_000)
	c.MaxSubscribersPerAddr = capDefault(c.MaxSubscribersPerAddr, 1_000)
	c.MaxRequestsPerAddr = capDefault(c.MaxRequestsPerAddr, 1_024)
	if c.AuthFailBurst <= 0 {
		c.AuthFailBurst = 20
	}
	if c.AuthFailEvery <= 0 {
		c.AuthFailEvery = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// capDefault maps 0 to def and a negative cap to 0, which netlimit reads
// as "no cap".
func capDefault(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// Server serves the API. Create it with New; mount Handler.
type Server struct {
	cfg      Config
	ctl      *controller.Controller
	hub      *hub.Hub
	auth     *auth.Authenticator
	history  HistoryStore
	log      *slog.Logger
	metrics  *Metrics
	throttle *auth.Throttle
	router   chi.Router
	// subSlots caps subscribers; proxied caps requests per real client
	// behind a trusted proxy.
	subSlots *netlimit.Slots
	proxied  *netlimit.Slots

	// conns counts live websocket handlers. A WaitGroup would race: new
	// upgrades may still arrive while shutdown waits.
	conns atomic.Int64
	// draining makes /readyz answer 503 while requests are still served,
	// so that a load balancer takes this instance out before it stops.
	draining atomic.Bool
}

// StartDraining makes /readyz answer 503 from now on; everything else is
// served as before. It is the first step of a graceful stop.
func (s *Server) StartDraining() { s.draining.Store(true) }

// Draining reports whether StartDraining was called.
func (s *Server) Draining() bool { return s.draining.Load() }

// New builds the server and its routes. extra, when non-nil, is mounted at
// "/" for everything the API does not claim (the dashboard).
func New(cfg Config, ctl *controller.Controller, h *hub.Hub, a *auth.Authenticator, history HistoryStore, metrics *Metrics, log *slog.Logger, extra http.Handler) *Server {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg: cfg, ctl: ctl, hub: h, auth: a, history: history, log: log, metrics: metrics,
		throttle: auth.NewThrottle(cfg.AuthFailBurst, cfg.AuthFailEvery, cfg.Now),
		subSlots: netlimit.NewSlots(cfg.MaxSubscribers, cfg.MaxSubscribersPerAddr),
		proxied:  netlimit.NewSlots(0, cfg.MaxRequestsPerAddr),
	}
	if metrics != nil && ctl != nil {
		metrics.Registry.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "brownout_component_bytes", Help: "Estimated memory held by reported components (budget: --max-component-bytes).",
			}, func() float64 { used, _ := ctl.ComponentBudget(); return float64(used) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "brownout_components_dropped_total", Help: "Reports whose components were dropped because the component budget was spent.",
			}, func() float64 { _, d := ctl.ComponentBudget(); return float64(d) }),
		)
	}
	s.router = s.routes(extra)
	return s
}

// Handler returns the root handler.
func (s *Server) Handler() http.Handler { return s.router }

// Router exposes the chi router, for route listings.
func (s *Server) Router() chi.Router { return s.router }

// WaitConnections waits until every websocket handler has returned or ctx
// ends.
func (s *Server) WaitConnections(ctx context.Context) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for s.conns.Load() > 0 {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

//go:embed openapi.yaml
var openapiFS embed.FS

// OpenAPI returns the embedded OpenAPI document.
func OpenAPI() []byte {
	b, _ := openapiFS.ReadFile("openapi.yaml")
	return b
}

func (s *Server) routes(extra http.Handler) chi.Router {
	r := chi.NewRouter()
	r.Use(s.recoverer, s.realClient, s.instrument, s.hsts)
	healthz := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	}
	// Probes answer HEAD like GET (net/http drops the body), so that load
	// balancers that probe with HEAD never fall through to the dashboard.
	r.Get("/healthz", healthz)
	r.Head("/healthz", healthz)
	r.Get("/readyz", s.readyz)
	r.Head("/readyz", s.readyz)
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))
	r.Get("/api/openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(OpenAPI())
	})
	r.Route("/api/v1", func(r chi.Router) {
		r.Use(s.limitBody, s.authenticate)
		r.NotFound(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, r, brownout.Errorf(brownout.ENOTFOUND, "no such endpoint: %s %s", r.Method, r.URL.Path))
		})
		r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, r, &brownout.Error{Code: "method_not_allowed", Message: "method " + r.Method + " is not allowed on " + r.URL.Path})
		})
		r.Post("/reports", s.postReports)
		r.Get("/subscribe", s.subscribe)

		r.With(s.require(canRead)).Get("/services", s.listServices)
		r.Get("/services/{service}", s.getService)
		r.With(s.require(isAdmin)).Delete("/services/{service}", s.retireService)
		r.Get("/services/{service}/instances", s.listInstances)
		r.Get("/services/{service}/instances/{instance}/components", s.listComponents)

		r.With(s.require(canRead)).Get("/thresholds", s.getThresholds)
		r.With(s.require(isAdmin)).Put("/thresholds", s.putThresholds)
		r.With(s.require(canRead)).Get("/services/{service}/thresholds", s.getServiceThresholds)
		r.With(s.require(isAdmin)).Put("/services/{service}/thresholds", s.putServiceThresholds)
		r.With(s.require(isAdmin)).Delete("/services/{service}/thresholds", s.deleteServiceThresholds)

		r.With(s.require(canRead)).Get("/flags", s.getFlags)
		r.With(s.require(isAdmin)).Put("/flags", s.putFlags)
		r.With(s.require(canRead)).Get("/services/{service}/flags", s.getServiceFlags)
		r.With(s.require(isAdmin)).Put("/services/{service}/flags", s.putServiceFlags)
		r.With(s.require(isAdmin)).Delete("/services/{service}/flags", s.deleteServiceFlags)

		r.With(s.require(isAdmin)).Post("/overrides", s.postOverride)
		r.With(s.require(canRead)).Get("/overrides", s.listOverrides)
		r.With(s.require(canRead)).Get("/overrides/{id}", s.getOverride)
		r.With(s.require(isAdmin)).Delete("/overrides/{id}", s.deleteOverride)
		r.With(s.require(canRead)).Get("/emergency", s.getEmergency)
		r.With(s.require(isAdmin)).Post("/emergency", s.postEmergency)
		r.With(s.require(isAdmin)).Delete("/emergency", s.deleteEmergency)

		r.With(s.require(isAdmin)).Post("/tokens", s.postToken)
		r.With(s.require(isAdmin)).Get("/tokens", s.listTokens)
		r.With(s.require(isAdmin)).Delete("/tokens/{id}", s.deleteToken)

		r.With(s.require(isAdmin)).Post("/webhooks", s.postWebhook)
		r.With(s.require(isAdmin)).Get("/webhooks", s.listWebhooks)
		r.With(s.require(isAdmin)).Delete("/webhooks/{id}", s.deleteWebhook)
		r.With(s.require(isAdmin)).Get("/deadletters", s.listDeadLetters)
		r.With(s.require(isAdmin)).Post("/deadletters/{id}/redrive", s.redriveDeadLetter)

		r.With(s.require(canRead)).Get("/history/levels", s.historyLevels)
		r.With(s.require(canRead)).Get("/history/samples", s.historySamples)
		r.With(s.require(canRead)).Get("/audit", s.listAudit)
		r.With(s.require(isAdmin)).Get("/backup", s.backup)
		r.With(s.require(canRead)).Get("/replicas", s.listReplicas)
	})
	if extra != nil {
		r.Handle("/*", extra)
	}
	return r
}

// hsts tells browsers to use HTTPS only, on answers that came over TLS.
func (s *Server) hsts(next http.Handler) http.Handler {
	if s.cfg.HSTSMaxAge <= 0 {
		return next
	}
	value := "max-age=" + strconv.FormatInt(int64(s.cfg.HSTSMaxAge/time.Second), 10)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", value)
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		w.Header().Set("Connection", "close")
		writeError(w, r, brownout.Errorf(brownout.EUNAVAILABLE, "draining: this instance is shutting down"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.history.Ping(ctx); err != nil {
		s.log.Warn("readiness: store not ready", "err", err)
		var be *brownout.Error
		if errors.As(err, &be) && be.Code == brownout.EUNAVAILABLE {
			writeError(w, r, be) // says what is wrong: file lost, disk full, read-only
			return
		}
		writeError(w, r, brownout.Errorf(brownout.EUNAVAILABLE, "store unreachable"))
		return
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(ctx); err != nil {
			s.log.Warn("readiness", "err", err)
			writeError(w, r, brownout.Errorf(brownout.EUNAVAILABLE, "not ready: %s", err.Error()))
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ready\n"))
}
