// Package resilience benchmarks the SDK's resilience primitives next to
// widely used Go libraries (github.com/sony/gobreaker/v2,
// golang.org/x/time/rate, github.com/failsafe-go/failsafe-go) on the same
// workloads, and checks the token bucket against x/time/rate call for call.
//
// It is a separate module so that the SDK never depends on those libraries.
// Run compare.sh for a table of ratios.
package resilience
