module github.com/brownout-io/brownout/bench/resilience

go 1.26.0

require (
	github.com/failsafe-go/failsafe-go v0.9.8
	github.com/sony/gobreaker/v2 v2.4.0
	golang.org/x/time v0.16.0
)

require (
	github.com/bits-and-blooms/bitset v1.24.4 // indirect
	github.com/brownout-io/brownout/sdk v0.1.0
)

replace github.com/brownout-io/brownout/sdk => ../../sdk
