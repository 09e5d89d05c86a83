package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/brownout-io/brownout/sdk/breaker"
	"github.com/brownout-io/brownout/sdk/ratelimit"
	"github.com/brownout-io/brownout/sdk/resilience"
	"github.com/brownout-io/brownout/sdk/retry"
	"github.com/brownout-io/brownout/sdk/timeout"
)

// The high-availability stack for calls to one dependency.
func Example() {
	inventory := resilience.New(resilience.Config{
		RateLimit: ratelimit.NewTokenBucket(1000, 100),
		Breaker:   breaker.New(breaker.Config{Name: "inventory"}),
		Retry: retry.New(retry.Config{MaxAttempts: 3, BaseDelay: time.Millisecond,
			Budget: retry.NewBudget(retry.BudgetConfig{})}),
		Timeout: timeout.New(timeout.Config{Name: "inventory", Timeout: 200 * time.Millisecond}),
	})
	calls := 0
	err := inventory.Do(context.Background(), func(ctx context.Context) error {
		calls++
		if calls == 1 {
			return errors.New("connection reset") // retried
		}
		return nil
	})
	fmt.Println(err, calls)
	// Output: <nil> 2
}
