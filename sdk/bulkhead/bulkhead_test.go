package bulkhead

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNeverExceedsLimit(t *testing.T) {
	for _, q := range []int{0, 50, 2000} {
		b := New(Config{Name: "db", MaxConcurrent: 7, MaxQueue: q})
		var cur, peak, ran, rejected atomic.Int64
		var wg sync.WaitGroup
		for g := 0; g < 1000; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := b.Execute(context.Background(), func(context.Context) error {
					n := cur.Add(1)
					for {
						p := peak.Load()
						if n <= p || peak.CompareAndSwap(p, n) {
							break
						}
					}
					if in := b.InUse(); in > 7 {
						t.Errorf("InUse %d > 7", in)
					}
					time.Sleep(10 * time.Microsecond)
					cur.Add(-1)
					ran.Add(1)
					return nil
				})
				if errors.Is(err, ErrRejected) {
					rejected.Add(1)
				} else if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if peak.Load() > 7 {
			t.Fatalf("queue %d: peak concurrency %d > 7", q, peak.Load())
		}
		if ran.Load()+rejected.Load() != 1000 {
			t.Fatalf("ran %d + rejected %d != 1000", ran.Load(), rejected.Load())
		}
		if q == 2000 && rejected.Load() != 0 {
			t.Fatalf("queue large enough for everyone, but %d rejected", rejected.Load())
		}
		if b.InUse() != 0 || b.Queued() != 0 {
			t.Fatalf("after: in use %d queued %d", b.InUse(), b.Queued())
		}
	}
}

func TestRejectionAndQueueTimeout(t *testing.T) {
	b := New(Config{Name: "api", MaxConcurrent: 1})
	if !b.TryAcquire() || b.TryAcquire() {
		t.Fatal("TryAcquire")
	}
	err := b.Acquire(context.Background())
	var re *RejectedError
	if !errors.As(err, &re) || re.Name != "api" || re.Reason != "full" || !errors.Is(err, ErrRejected) {
		t.Fatalf("want full rejection, got %v", err)
	}
	b.Release()

	q := New(Config{Name: "q", MaxConcurrent: 1, MaxQueue: 1, QueueTimeout: 20 * time.Millisecond})
	q.TryAcquire()
	done := make(chan error)
	go func() { done <- q.Acquire(context.Background()) }()
	for q.Queued() != 1 {
		time.Sleep(time.Millisecond)
	}
	if err := q.Acquire(context.Background()); !errors.As(err, &re) || re.Reason != "full" {
		t.Fatalf("queue full: %v", err)
	}
	if err := <-done; !errors.As(err, &re) || re.Reason != "queue_timeout" {
		t.Fatalf("want queue timeout, got %v", err)
	}
	if q.Queued() != 0 || q.InUse() != 1 || q.Rejected() != 2 {
		t.Fatalf("queued %d in use %d rejected %d", q.Queued(), q.InUse(), q.Rejected())
	}
}

func TestQueueHandOffIsFIFO(t *testing.T) {
	b := New(Config{MaxConcurrent: 1, MaxQueue: 10})
	b.TryAcquire()
	order := make(chan int, 5)
	for i := 0; i < 5; i++ {
		go func(i int) {
			if err := b.Acquire(context.Background()); err != nil {
				t.Error(err)
				return
			}
			order <- i
			b.Release()
		}(i)
		for b.Queued() != i+1 {
			time.Sleep(time.Millisecond)
		}
	}
	if b.TryAcquire() {
		t.Fatal("TryAcquire overtook queued callers")
	}
	b.Release()
	for i := 0; i < 5; i++ {
		if got := <-order; got != i {
			t.Fatalf("served %d at position %d", got, i)
		}
	}
}

func TestContextEndsWait(t *testing.T) {
	b := New(Config{MaxConcurrent: 1, MaxQueue: 1})
	b.TryAcquire()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for b.Queued() != 1 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	if err := b.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	cs := b.ComponentState()
	if cs.Kind != "bulkhead" || cs.Metrics["in_use"] != 1 || cs.Metrics["queued"] != 0 {
		t.Fatalf("%+v", cs)
	}
}

func TestFastPathAllocatesNothing(t *testing.T) {
	b := New(Config{MaxConcurrent: 1})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	if n := testing.AllocsPerRun(1000, func() {
		_ = b.Execute(ctx, fn)
		b.TryAcquire()
		_ = b.Acquire(ctx) // rejected
		b.Release()
	}); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

func BenchmarkExecute(b *testing.B) {
	bh := New(Config{MaxConcurrent: 1 << 20})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = bh.Execute(ctx, fn)
		}
	})
}
