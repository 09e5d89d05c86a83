// Package component defines how a resilience primitive (breaker, bulkhead,
// rate limiter, …) describes its live state so that the SDK can ship it to
// the controller with every health report.
//
// It is a leaf package with no dependencies, so that importing a primitive
// such as sdk/breaker never pulls the websocket client into a binary.
package component

// State is one primitive's state as it travels in a report's "components"
// map, keyed by the name it was registered under.
type State struct {
	// Kind names the primitive: "breaker", "bulkhead", "ratelimit", "retry", …
	Kind string `json:"kind"`
	// State is a short word for discrete states ("closed", "open",
	// "half_open"); empty where the primitive has none.
	State string `json:"state,omitempty"`
	// Metrics holds numeric gauges and counters ("failure_rate", "in_use",
	// "queued", "rejected").
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// Reporter is implemented by every primitive that can be registered with the
// SDK client. ComponentState must be safe to call from any goroutine and
// must not block.
type Reporter interface {
	ComponentState() State
}

// Limits that the controller enforces on the "components" field of a report.
const (
	// MaxComponents is the most components one report may carry.
	MaxComponents = 64
	// MaxMetrics is the most metrics one component may carry.
	MaxMetrics = 32
)
