// Package component defines how a resilience primitive (breaker, bulkhead,
// rate limiter, …) describes its live state so that the SDK can ship it to
// the controller with every health report.
//
// It is a leaf package that depends only on the wire contract, so that
// importing a primitive such as sdk/breaker never pulls the websocket
// client into a binary.
package component

import "github.com/brownout-io/brownout/sdk/wire"

// State is one primitive's state as it travels in a report's "components"
// map, keyed by the name it was registered under.
type State = wire.ComponentState

// Reporter is implemented by every primitive that can be registered with the
// SDK client. ComponentState must be safe to call from any goroutine and
// must not block.
type Reporter interface {
	ComponentState() State
}

// Limits that the controller enforces on the "components" field of a report.
const (
	// MaxComponents is the most components one report may carry.
	MaxComponents = wire.MaxComponents
	// MaxMetrics is the most metrics one component may carry.
	MaxMetrics = wire.MaxMetrics
)
