package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/brownout-io/brownout/sdk/breaker"
	"github.com/brownout-io/brownout/sdk/resilience/clock"
)

func Example() {
	clk := clock.NewManual(0) // a real service leaves Clock unset
	b := breaker.New(breaker.Config{
		Name:                 "payments",
		WindowSize:           20,
		MinimumCalls:         4,
		FailureRateThreshold: 0.5,
		OpenDuration:         10 * time.Second,
		HalfOpenProbes:       1,
		Clock:                clk,
		OnStateChange: func(e breaker.Event) {
			fmt.Printf("%s: %v -> %v\n", e.Name, e.From, e.To)
		},
	})
	down := errors.New("503")
	for i := 0; i < 4; i++ {
		_ = b.Execute(context.Background(), func(context.Context) error { return down })
	}
	err := b.Execute(context.Background(), func(context.Context) error { return nil })
	fmt.Println(errors.Is(err, breaker.ErrOpen))

	clk.Advance(10 * time.Second)
	_ = b.Execute(context.Background(), func(context.Context) error { return nil }) // the probe
	// Output:
	// payments: closed -> open
	// true
	// payments: open -> half_open
	// payments: half_open -> closed
}

// The two-step form suits calls whose outcome is known elsewhere, such as a
// response handled in a callback. The Token is a value: no allocation.
func ExampleBreaker_Allow() {
	b := breaker.New(breaker.Config{})
	tok, err := b.Allow()
	if err != nil {
		fmt.Println("rejected:", err)
		return
	}
	// ... make the call ...
	tok.Done(nil)
	fmt.Println(b.State())
	// Output: closed
}

// Operators can pin a breaker, for example while a dependency is in
// maintenance.
func ExampleBreaker_ForceOpen() {
	b := breaker.New(breaker.Config{})
	b.ForceOpen()
	_, err := b.Allow()
	fmt.Println(err, b.State())
	b.Reset()
	fmt.Println(b.State())
	// Output:
	// breaker: circuit open forced_open
	// closed
}
