// Package bulkhead limits how many calls to a dependency run at once, so a
// slow dependency ties up a bounded share of the caller's goroutines,
// connections and memory instead of all of them.
//
// A Bulkhead admits up to MaxConcurrent calls. Further calls either fail at
// once with a *RejectedError, or, with MaxQueue > 0, wait in a FIFO queue of
// at most MaxQueue callers for up to QueueTimeout (and no longer than their
// context allows). A released slot is handed directly to the longest
// waiting caller.
//
// Acquiring a free slot and releasing one nobody waits for are lock-free
// (a compare-and-swap and an atomic add); only the queue takes a mutex. The
// gauges InUse and Queued are atomics, readable at any time without locks.
package bulkhead

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brownout-io/brownout/sdk/component"
)

// ErrRejected is matched (with errors.Is) by every *RejectedError.
var ErrRejected = errors.New("bulkhead: rejected")

// RejectedError reports a call that the bulkhead did not admit.
type RejectedError struct {
	// Name is the bulkhead's name.
	Name string
	// Reason is "full" (no slot and no room in the queue) or
	// "queue_timeout" (waited QueueTimeout without getting a slot).
	Reason string
}

// Error names the bulkhead and the reason.
func (e *RejectedError) Error() string {
	return "bulkhead " + e.Name + ": rejected (" + e.Reason + ")"
}

// Is makes errors.Is(err, ErrRejected) true.
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// Config configures a Bulkhead.
type Config struct {
	// Name identifies the bulkhead in errors.
	Name string
	// MaxConcurrent is the number of calls admitted at once. Default 10.
	MaxConcurrent int
	// MaxQueue is the number of callers that may wait for a slot. Zero
	// means callers never wait.
	MaxQueue int
	// QueueTimeout bounds a queued caller's wait. Zero means the wait is
	// bounded only by the caller's context.
	QueueTimeout time.Duration
}

// Bulkhead is a concurrency limiter. Create it with New; it is safe for
// concurrent use.
type Bulkhead struct {
	inUse atomic.Int64
	_     [56]byte
	// queued mirrors len(waiters); it is written under mu but read without
	// it.
	queued atomic.Int64
	_      [56]byte

	name    string
	max     int64
	maxQ    int
	timeout time.Duration

	mu      sync.Mutex
	waiters []*waiter // FIFO

	rejected     atomic.Uint64
	full, qTimed *RejectedError // preallocated: rejecting allocates nothing
}

type waiter struct {
	ready chan struct{} // receives when a slot is handed over
}

// New returns a Bulkhead.
func New(cfg Config) *Bulkhead {
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 10
	}
	return &Bulkhead{
		name:    cfg.Name,
		max:     int64(cfg.MaxConcurrent),
		maxQ:    max(cfg.MaxQueue, 0),
		timeout: cfg.QueueTimeout,
		full:    &RejectedError{Name: cfg.Name, Reason: "full"},
		qTimed:  &RejectedError{Name: cfg.Name, Reason: "queue_timeout"},
	}
}

// Name returns the configured name.
func (b *Bulkhead) Name() string { return b.name }

// InUse returns the number of slots held.
func (b *Bulkhead) InUse() int { return int(b.inUse.Load()) }

// Queued returns the number of callers waiting for a slot.
func (b *Bulkhead) Queued() int { return int(b.queued.Load()) }

// Rejected returns how many calls were rejected.
func (b *Bulkhead) Rejected() uint64 { return b.rejected.Load() }

// tryInc takes a slot if one is free.
func (b *Bulkhead) tryInc() bool {
	for {
		n := b.inUse.Load()
		if n >= b.max {
			return false
		}
		if b.inUse.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// TryAcquire takes a slot if one is free, without waiting, and reports
// whether it did. A caller that got a slot must call Release once.
func (b *Bulkhead) TryAcquire() bool {
	if b.queued.Load() == 0 && b.tryInc() {
		return true
	}
	return false
}

// Acquire takes a slot, waiting in the queue if the bulkhead is full and
// the queue has room. It returns nil when the caller holds a slot (and must
// call Release once), a *RejectedError if the bulkhead is full and the
// queue too, or if the queue wait timed out, and the context's error if it
// ended first.
func (b *Bulkhead) Acquire(ctx context.Context) error {
	// Do not overtake queued callers.
	if b.queued.Load() == 0 && b.tryInc() {
		return nil
	}
	if b.maxQ == 0 {
		b.rejected.Add(1)
		return b.full
	}
	return b.wait(ctx)
}

func (b *Bulkhead) wait(ctx context.Context) error {
	b.mu.Lock()
	if len(b.waiters) >= b.maxQ {
		b.mu.Unlock()
		b.rejected.Add(1)
		return b.full
	}
	w := &waiter{ready: make(chan struct{}, 1)}
	b.waiters = append(b.waiters, w)
	b.queued.Store(int64(len(b.waiters)))
	// Retry after publishing the queue length: a Release that ran before
	// this point freed a slot we can take now; one that runs after it will
	// see the queue and hand its slot over.
	if len(b.waiters) == 1 && b.tryInc() {
		b.removeLocked(w)
		b.mu.Unlock()
		return nil
	}
	b.mu.Unlock()

	var timeout <-chan time.Time
	if b.timeout > 0 {
		t := time.NewTimer(b.timeout)
		defer t.Stop()
		timeout = t.C
	}
	var err error
	select {
	case <-w.ready:
		return nil
	case <-timeout:
		err = b.qTimed
	case <-ctx.Done():
		err = ctx.Err()
	}
	b.mu.Lock()
	removed := b.removeLocked(w)
	if removed && len(b.waiters) > 0 && b.tryInc() {
		// Defensive: never leave a free slot with callers waiting.
		b.handLocked()
	}
	b.mu.Unlock()
	if !removed {
		// A slot was handed over as we gave up: we hold it, so use it.
		<-w.ready
		return nil
	}
	if err == b.qTimed {
		b.rejected.Add(1)
	}
	return err
}

// removeLocked removes w from the queue and reports whether it was there.
func (b *Bulkhead) removeLocked(w *waiter) bool {
	for i, x := range b.waiters {
		if x == w {
			copy(b.waiters[i:], b.waiters[i+1:])
			b.waiters[len(b.waiters)-1] = nil
			b.waiters = b.waiters[:len(b.waiters)-1]
			b.queued.Store(int64(len(b.waiters)))
			return true
		}
	}
	return false
}

// Release gives back a slot taken by TryAcquire or a successful Acquire,
// handing it to the longest-waiting queued caller if there is one.
func (b *Bulkhead) Release() {
	if b.queued.Load() == 0 {
		b.inUse.Add(-1)
		if b.queued.Load() == 0 {
			return
		}
		// A caller queued while we released: give it the slot if it is
		// still free.
		b.mu.Lock()
		if len(b.waiters) > 0 && b.tryInc() {
			b.handLocked()
		}
		b.mu.Unlock()
		return
	}
	b.mu.Lock()
	if len(b.waiters) > 0 {
		b.handLocked() // the slot passes on; inUse is unchanged
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	b.inUse.Add(-1)
}

// handLocked passes a held slot to the first waiter.
func (b *Bulkhead) handLocked() {
	w := b.waiters[0]
	copy(b.waiters, b.waiters[1:])
	b.waiters[len(b.waiters)-1] = nil
	b.waiters = b.waiters[:len(b.waiters)-1]
	b.queued.Store(int64(len(b.waiters)))
	w.ready <- struct{}{}
}

// Execute runs fn holding a slot, or returns Acquire's error without
// running it. The slot is released even if fn panics.
func (b *Bulkhead) Execute(ctx context.Context, fn func(context.Context) error) error {
	if err := b.Acquire(ctx); err != nil {
		return err
	}
	defer b.Release()
	return fn(ctx)
}

// ComponentState implements component.Reporter: kind "bulkhead" with the
// gauges "in_use", "queued", "max_concurrent", "max_queue" and the counter
// "rejected".
func (b *Bulkhead) ComponentState() component.State {
	return component.State{
		Kind: "bulkhead",
		Metrics: map[string]float64{
			"in_use":         float64(b.inUse.Load()),
			"queued":         float64(b.queued.Load()),
			"max_concurrent": float64(b.max),
			"max_queue":      float64(b.maxQ),
			"rejected":       float64(b.rejected.Load()),
		},
	}
}
