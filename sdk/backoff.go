package sdk

import (
	"math/rand/v2"
	"time"
)

// backoffConfig is a capped exponential backoff with full jitter: the n-th
// wait is uniform in [0, min(max, initial·2ⁿ)). Full jitter spreads the
// reconnects of many instances after a controller restart instead of
// synchronising them.
type backoffConfig struct {
	initial time.Duration
	max     time.Duration
	// stable is how long a connection must last for the next failure to
	// start again from initial.
	stable time.Duration
}

var defaultBackoff = backoffConfig{
	initial: 500 * time.Millisecond,
	max:     30 * time.Second,
	stable:  30 * time.Second,
}

type backoff struct {
	cfg     backoffConfig
	rnd     *rand.Rand
	attempt int
}

func newBackoff(cfg backoffConfig, rnd *rand.Rand) *backoff {
	return &backoff{cfg: cfg, rnd: rnd}
}

// ceiling is the upper bound of the current attempt's wait.
func (b *backoff) ceiling() time.Duration {
	d := b.cfg.initial
	for i := 0; i < b.attempt && d < b.cfg.max; i++ {
		d *= 2
	}
	return min(d, b.cfg.max)
}

// next returns the wait before the next attempt and advances.
func (b *backoff) next() time.Duration {
	c := b.ceiling()
	b.attempt++
	if c <= 0 {
		return 0
	}
	return time.Duration(b.rnd.Int64N(int64(c)))
}

// reset starts over from initial.
func (b *backoff) reset() { b.attempt = 0 }
