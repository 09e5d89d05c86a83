package retry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/brownout-io/brownout/sdk/retry"
)

func Example() {
	budget := retry.NewBudget(retry.BudgetConfig{}) // share one per dependency
	r := retry.New(retry.Config{
		MaxAttempts: 4,
		BaseDelay:   time.Millisecond,
		MaxDelay:    50 * time.Millisecond,
		Budget:      budget,
	})
	attempts := 0
	err := r.Do(context.Background(), func(context.Context) error {
		attempts++
		if attempts < 3 {
			return errors.New("connection reset")
		}
		return nil
	})
	// Two retries cost 5 tokens each; the success refunds the last one.
	fmt.Println(err, attempts, budget.Tokens())
	// Output: <nil> 3 495
}

// Errors that cannot succeed on a retry are returned at once.
func ExamplePermanent() {
	r := retry.New(retry.Config{})
	attempts := 0
	err := r.Do(context.Background(), func(context.Context) error {
		attempts++
		return retry.Permanent(errors.New("400 bad request"))
	})
	fmt.Println(err, attempts)
	// Output: 400 bad request 1
}

// When every attempt fails the error says why retrying stopped.
func ExampleError() {
	r := retry.New(retry.Config{MaxAttempts: 2, BaseDelay: time.Millisecond})
	err := r.Do(context.Background(), func(context.Context) error { return errors.New("timeout talking to db") })
	var re *retry.Error
	fmt.Println(errors.As(err, &re), re.Attempts, errors.Is(err, retry.ErrAttemptsExhausted))
	// Output: true 2 true
}
