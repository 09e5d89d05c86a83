package retry

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/brownout-io/brownout/sdk/component"
)

// BudgetConfig configures a Budget. Zero fields take the defaults, which
// are those of the AWS SDKs' standard retry mode.
type BudgetConfig struct {
	// Capacity is the most tokens the budget holds; it starts full.
	// Default 500.
	Capacity int64
	// RetryCost is taken for each retry. Default 5.
	RetryCost int64
	// TimeoutCost is taken instead for a retry after an error matching
	// context.DeadlineExceeded or a net timeout. Default 10.
	TimeoutCost int64
	// SuccessRefill is returned when a call succeeds on its first attempt.
	// A call that succeeds on a retry returns that retry's cost instead.
	// Default 1.
	SuccessRefill int64
}

// Budget is a token bucket shared by the Retriers that call one dependency:
// retries spend tokens, successes earn them back. When failures outpace
// successes the budget runs dry and retries stop until calls succeed again,
// which caps the extra load that retries add during an outage at about
// Capacity/RetryCost retries plus one per RetryCost/SuccessRefill
// successes. It is lock-free and safe for concurrent use.
type Budget struct {
	tokens   atomic.Int64
	capacity int64
	cost     int64
	tcost    int64
	refillN  int64
}

// NewBudget returns a full Budget.
func NewBudget(cfg BudgetConfig) *Budget {
	if cfg.Capacity <= 0 {
		cfg.Capacity = 500
	}
	if cfg.RetryCost <= 0 {
		cfg.RetryCost = 5
	}
	if cfg.TimeoutCost <= 0 {
		cfg.TimeoutCost = 10
	}
	if cfg.SuccessRefill <= 0 {
		cfg.SuccessRefill = 1
	}
	b := &Budget{capacity: cfg.Capacity, cost: cfg.RetryCost, tcost: cfg.TimeoutCost, refillN: cfg.SuccessRefill}
	b.tokens.Store(cfg.Capacity)
	return b
}

// Tokens returns the tokens available.
func (b *Budget) Tokens() int64 { return b.tokens.Load() }

// Capacity returns the configured capacity.
func (b *Budget) Capacity() int64 { return b.capacity }

type timeout interface{ Timeout() bool }

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var t timeout
	return errors.As(err, &t) && t.Timeout()
}

// take removes the cost of retrying after err and returns it, or -1 if the
// budget cannot pay.
func (b *Budget) take(err error) int64 {
	c := b.cost
	if isTimeout(err) {
		c = b.tcost
	}
	if !b.TryTake(c) {
		return -1
	}
	return c
}

// TryTake removes n tokens if that many are available and reports whether
// it did.
func (b *Budget) TryTake(n int64) bool {
	for {
		t := b.tokens.Load()
		if t < n {
			return false
		}
		if b.tokens.CompareAndSwap(t, t-n) {
			return true
		}
	}
}

// success credits a first-attempt success without a write when the budget
// is full, the normal case. It is kept out of line so that Retrier.Do stays
// inlinable.
//
//go:noinline
func (b *Budget) success() {
	if b.tokens.Load() < b.capacity {
		b.Put(b.refillN)
	}
}

// refill credits a success: charged tokens if it followed a retry,
// SuccessRefill otherwise. A full budget is only read, not written, so
// successes from many goroutines do not contend.
func (b *Budget) refill(charged int64) {
	n := charged
	if n <= 0 {
		n = b.refillN
	}
	b.Put(n)
}

// Put returns up to n tokens, capped at the capacity.
func (b *Budget) Put(n int64) {
	for {
		t := b.tokens.Load()
		if t >= b.capacity {
			return
		}
		if b.tokens.CompareAndSwap(t, min(b.capacity, t+n)) {
			return
		}
	}
}

// ComponentState implements component.Reporter: kind "retry_budget" with
// the gauges "tokens" and "capacity".
func (b *Budget) ComponentState() component.State {
	return component.State{Kind: "retry_budget", Metrics: map[string]float64{
		"tokens":   float64(b.Tokens()),
		"capacity": float64(b.capacity),
	}}
}
