package bulkhead_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/brownout-io/brownout/sdk/bulkhead"
)

func Example() {
	b := bulkhead.New(bulkhead.Config{Name: "reports", MaxConcurrent: 1})
	release := make(chan struct{})
	started := make(chan struct{})
	go b.Execute(context.Background(), func(context.Context) error {
		close(started)
		<-release
		return nil
	})
	<-started
	err := b.Execute(context.Background(), func(context.Context) error { return nil })
	fmt.Println(err, errors.Is(err, bulkhead.ErrRejected), b.InUse())
	close(release)
	// Output: bulkhead reports: rejected (full) true 1
}

// With a queue, callers wait for a slot, up to QueueTimeout.
func Example_queue() {
	b := bulkhead.New(bulkhead.Config{Name: "search", MaxConcurrent: 1, MaxQueue: 10, QueueTimeout: time.Second})
	b.TryAcquire()
	go func() {
		time.Sleep(10 * time.Millisecond)
		b.Release() // hands the slot to the queued caller
	}()
	err := b.Acquire(context.Background())
	fmt.Println(err, b.InUse(), b.Queued())
	b.Release()
	// Output: <nil> 1 0
}
