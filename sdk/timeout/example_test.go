package timeout_test

import (
	"context"
	"fmt"
	"time"

	"github.com/brownout-io/brownout/sdk/timeout"
)

// A handler with a 2s budget gives its database call half of what remains,
// keeping 100ms back to write the response; the error names the layer that
// ran out.
func Example() {
	handler := timeout.New(timeout.Config{Name: "handler", Timeout: 2 * time.Second})
	db := timeout.New(timeout.Config{Name: "db", Fraction: 0.5, Reserve: 100 * time.Millisecond, Timeout: 20 * time.Millisecond})

	err := handler.Run(context.Background(), func(ctx context.Context) error {
		return db.Run(ctx, func(ctx context.Context) error {
			<-ctx.Done() // a query that hangs
			return ctx.Err()
		})
	})
	layer, _ := timeout.ExpiredLayer(err)
	fmt.Println(layer)
	// Output: db
}

func ExampleLayer_Budget() {
	parent, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	l := timeout.New(timeout.Config{Name: "cache", Fraction: 0.1, Timeout: 50 * time.Millisecond})
	d, ok := l.Budget(parent)
	fmt.Println(d, ok)
	// Output: 50ms true
}
