package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/brownout-io/brownout/internal/buildinfo"
)

// Metrics are the controller's Prometheus metrics, on a registry of their
// own (no global state). It also implements controller.Observer and
// hub.Observer.
type Metrics struct {
	Registry *prometheus.Registry

	ReportsIngested *prometheus.CounterVec
	ReportsRejected *prometheus.CounterVec
	Subscribers     prometheus.Gauge
	Pushes          prometheus.Counter
	PushFrames      prometheus.Counter
	AckLatencyHist  prometheus.Histogram
	ServiceLevel    *prometheus.GaugeVec
	StoreWrite      *prometheus.HistogramVec
	SamplesDropped  prometheus.CounterFunc
	AuthFailures    prometheus.Counter
	Panics          prometheus.Counter
	HTTPRequests    *prometheus.CounterVec
	HTTPDuration    *prometheus.HistogramVec
	WSCloses        *prometheus.CounterVec
	// Replication (one replica among several over a shared store).
	Leader             prometheus.Gauge
	Failovers          prometheus.Counter
	FeedLagHist        prometheus.Histogram
	FeedUp             prometheus.Gauge
	ReplicaSubscribers *prometheus.GaugeVec
	ConnsRefused       *prometheus.CounterVec
}

// NewMetrics registers every metric on a new registry, with Go runtime and
// process collectors. dropped, when non-nil, reports samples dropped by the
// writer.
func NewMetrics(dropped func() float64) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: reg,
		ReportsIngested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "brownout_reports_ingested_total", Help: "Reports accepted, by transport (http, ws).",
		}, []string{"transport"}),
		ReportsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "brownout_reports_rejected_total", Help: "Reports refused, by transport and error code.",
		}, []string{"transport", "code"}),
		Subscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "brownout_subscribers", Help: "Connected websocket subscribers.",
		}),
		Pushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "brownout_pushes_total", Help: "State changes published to subscribers (one per new version).",
		}),
		PushFrames: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "brownout_push_frames_total", Help: "State frames offered to subscribers (latest wins, so some are superseded).",
		}),
		AckLatencyHist: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "brownout_ack_latency_seconds", Help: "Time from a state change to a subscriber's ack of it.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		ServiceLevel: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "brownout_service_level", Help: "Effective degradation level per service (0 FULL … 3 MAINTENANCE).",
		}, []string{"service"}),
		StoreWrite: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "brownout_store_write_seconds", Help: "Duration of store write transactions, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}, []string{"op"}),
		AuthFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "brownout_auth_failures_total", Help: "Requests refused for a missing, bad or revoked token.",
		}),
		Panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "brownout_handler_panics_total", Help: "Handler panics recovered (should stay 0).",
		}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "brownout_http_requests_total", Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "brownout_http_request_seconds", Help: "HTTP request duration by method and route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
		WSCloses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "brownout_ws_closes_total", Help: "Subscriber connections ended, by reason.",
		}, []string{"reason"}),
		ConnsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "brownout_connections_refused_total", Help: "Connections and subscriptions refused by a cap, by cap (total, per_addr, subscribers_total, subscribers_per_addr).",
		}, []string{"cap"}),
	}
	m.Leader = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "brownout_replica_leader", Help: "1 while this replica leads (evaluates levels), else 0. A single-replica controller always leads.",
	})
	m.Failovers = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "brownout_replica_failovers_total", Help: "Times this replica took over leadership that another replica held before.",
	})
	m.FeedLagHist = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "brownout_replica_notify_lag_seconds", Help: "Delay from a change's commit on any replica to its notification here.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	m.FeedUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "brownout_replica_feed_connected", Help: "1 while this replica's change feed listener is connected and caught up.",
	})
	m.ReplicaSubscribers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "brownout_replica_subscribers", Help: "Subscribers connected to each replica of the set, as last heartbeated.",
	}, []string{"replica"})
	reg.MustRegister(m.Leader, m.Failovers, m.FeedLagHist, m.FeedUp, m.ReplicaSubscribers)
	reg.MustRegister(m.ReportsIngested, m.ReportsRejected, m.Subscribers, m.Pushes, m.PushFrames, m.AckLatencyHist,
		m.ServiceLevel, m.StoreWrite, m.AuthFailures, m.Panics, m.HTTPRequests, m.HTTPDuration, m.WSCloses, m.ConnsRefused)
	bi := buildinfo.Read()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "brownout_build_info", Help: "Always 1; the labels say which build runs (version, commit, commit time, Go).",
		ConstLabels: prometheus.Labels{"version": bi.Version, "revision": bi.Revision, "time": bi.Time, "goversion": bi.GoVersion},
	})
	build.Set(1)
	reg.MustRegister(build)
	if dropped != nil {
		m.SamplesDropped = prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "brownout_samples_dropped_total", Help: "Samples the writer dropped because its buffer was full.",
		}, dropped)
		reg.MustRegister(m.SamplesDropped)
	}
	return m
}

// LevelChanged implements controller.Observer.
func (m *Metrics) LevelChanged(service string, level int) {
	m.ServiceLevel.WithLabelValues(service).Set(float64(level))
}

// Pushed implements hub.Observer.
func (m *Metrics) Pushed(_ string, subscribers int) {
	m.Pushes.Inc()
	m.PushFrames.Add(float64(subscribers))
}

// AckLatency implements hub.Observer.
func (m *Metrics) AckLatency(d time.Duration) { m.AckLatencyHist.Observe(d.Seconds()) }

// SubscribersChanged implements hub.Observer.
func (m *Metrics) SubscribersChanged(delta int) { m.Subscribers.Add(float64(delta)) }

// StoreWriteObserved records a store write's duration.
func (m *Metrics) StoreWriteObserved(op string, d time.Duration) {
	m.StoreWrite.WithLabelValues(op).Observe(d.Seconds())
}

// ServiceRetired drops a retired service's level gauge, so that alerts on
// it end.
func (m *Metrics) ServiceRetired(service string) {
	m.ServiceLevel.DeleteLabelValues(service)
}

// Leading implements replica.Observer.
func (m *Metrics) Leading(on bool) { m.Leader.Set(b2f(on)) }

// Failover implements replica.Observer.
func (m *Metrics) Failover() { m.Failovers.Inc() }

// FeedLag implements replica.Observer.
func (m *Metrics) FeedLag(d time.Duration) { m.FeedLagHist.Observe(d.Seconds()) }

// FeedConnected implements replica.Observer.
func (m *Metrics) FeedConnected(on bool) { m.FeedUp.Set(b2f(on)) }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
