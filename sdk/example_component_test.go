package sdk_test

import "github.com/brownout-io/brownout/sdk/component"

// dbPool stands for a connection pool that reports its use.
type dbPool struct{}

func (dbPool) ComponentState() component.State {
	return component.State{Kind: "bulkhead", Metrics: map[string]float64{"in_use": 3, "queued": 0}}
}

type componentState = component.State
