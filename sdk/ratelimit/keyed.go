package ratelimit

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brownout-io/brownout/sdk/component"
	"github.com/brownout-io/brownout/sdk/resilience/clock"
)

// Limiter is what Keyed needs from a per-key limiter. *TokenBucket and
// *SlidingWindow implement it.
type Limiter interface {
	AllowN(n int) bool
}

// KeyedConfig configures a Keyed limiter.
type KeyedConfig struct {
	// MaxKeys bounds the number of keys held. When a shard is full, adding
	// a key evicts that shard's least recently used key, so the bound is
	// exact. Default 10000.
	MaxKeys int
	// IdleTTL evicts keys unused for this long (checked when keys are added
	// and by Sweep). Zero keeps keys until they are pushed out by MaxKeys.
	IdleTTL time.Duration
	// Shards is the number of independently locked shards, rounded up to a
	// power of two. Default 64, capped at MaxKeys.
	Shards int
	// Clock is the time source for idle tracking; default the coarse clock.
	Clock clock.Clock
}

// Keyed keeps one limiter per key, created on first use by a constructor,
// in bounded memory. Lookups of an existing key take a shard's read lock;
// only adding and evicting keys take its write lock.
type Keyed[K comparable, L Limiter] struct {
	newL     func(K) L
	seed     maphash.Seed
	shards   []keyedShard[K, L]
	mask     uint64
	perShard int
	ttl      int64
	clk      clock.Clock
	evicted  atomic.Uint64
	rejected counter
}

type keyedShard[K comparable, L Limiter] struct {
	mu sync.RWMutex
	m  map[K]*keyedEntry[L]
	_  [40]byte
}

type keyedEntry[L Limiter] struct {
	lim  L
	last atomic.Int64
}

// NewKeyed returns a Keyed limiter that creates a key's limiter with newL.
func NewKeyed[K comparable, L Limiter](cfg KeyedConfig, newL func(K) L) *Keyed[K, L] {
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 10000
	}
	if cfg.Shards <= 0 {
		cfg.Shards = 64
	}
	cfg.Shards = min(cfg.Shards, cfg.MaxKeys)
	n := 1
	for n < cfg.Shards {
		n <<= 1
	}
	if n > cfg.MaxKeys { // keep perShard >= 1 with an exact bound
		n >>= 1
	}
	k := &Keyed[K, L]{
		newL:     newL,
		seed:     maphash.MakeSeed(),
		shards:   make([]keyedShard[K, L], n),
		mask:     uint64(n - 1),
		perShard: cfg.MaxKeys / n,
		ttl:      int64(cfg.IdleTTL),
		clk:      cfg.Clock,
	}
	for i := range k.shards {
		k.shards[i].m = make(map[K]*keyedEntry[L])
	}
	return k
}

func (k *Keyed[K, L]) now() int64 {
	if k.clk != nil {
		return k.clk.Nanotime()
	}
	return clock.Coarse()
}

// Allow is AllowN(key, 1).
func (k *Keyed[K, L]) Allow(key K) bool { return k.AllowN(key, 1) }

// AllowN reports whether n events for key may happen now.
func (k *Keyed[K, L]) AllowN(key K, n int) bool {
	if k.Get(key).AllowN(n) {
		return true
	}
	k.rejected.inc()
	return false
}

// Get returns key's limiter, creating it if needed. A limiter evicted while
// a caller still holds it keeps working but is no longer shared: the next
// Get creates a fresh one.
func (k *Keyed[K, L]) Get(key K) L {
	now := k.now()
	s := &k.shards[maphash.Comparable(k.seed, key)&k.mask]
	s.mu.RLock()
	e, ok := s.m[key]
	s.mu.RUnlock()
	if ok {
		if e.last.Load() < now {
			e.last.Store(now)
		}
		return e.lim
	}
	return k.add(s, key, now)
}

func (k *Keyed[K, L]) add(s *keyedShard[K, L], key K, now int64) L {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok {
		return e.lim
	}
	if len(s.m) >= k.perShard {
		k.evictLocked(s, now)
	}
	e := &keyedEntry[L]{lim: k.newL(key)}
	e.last.Store(now)
	s.m[key] = e
	return e.lim
}

// evictLocked removes idle keys and, if the shard is still full, its least
// recently used key.
func (k *Keyed[K, L]) evictLocked(s *keyedShard[K, L], now int64) {
	var (
		oldest   K
		oldestAt int64
		found    bool
	)
	for key, e := range s.m {
		at := e.last.Load()
		if k.ttl > 0 && now-at > k.ttl {
			delete(s.m, key)
			k.evicted.Add(1)
			continue
		}
		if !found || at < oldestAt {
			oldest, oldestAt, found = key, at, true
		}
	}
	if len(s.m) >= k.perShard && found {
		delete(s.m, oldest)
		k.evicted.Add(1)
	}
}

// Sweep removes keys idle for longer than IdleTTL. Call it periodically if
// keys stop arriving; adding keys sweeps their shard anyway.
func (k *Keyed[K, L]) Sweep() {
	if k.ttl <= 0 {
		return
	}
	now := k.now()
	for i := range k.shards {
		s := &k.shards[i]
		s.mu.Lock()
		for key, e := range s.m {
			if now-e.last.Load() > k.ttl {
				delete(s.m, key)
				k.evicted.Add(1)
			}
		}
		s.mu.Unlock()
	}
}

// Len returns the number of keys held.
func (k *Keyed[K, L]) Len() int {
	n := 0
	for i := range k.shards {
		s := &k.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Evicted returns how many keys have been evicted.
func (k *Keyed[K, L]) Evicted() uint64 { return k.evicted.Load() }

// ComponentState implements component.Reporter: kind "ratelimit" with the
// gauges "keys", "max_keys" and the counters "evicted", "rejected".
func (k *Keyed[K, L]) ComponentState() component.State {
	return component.State{
		Kind: "ratelimit",
		Metrics: map[string]float64{
			"keys":     float64(k.Len()),
			"max_keys": float64(k.perShard * len(k.shards)),
			"evicted":  float64(k.evicted.Load()),
			"rejected": float64(k.rejected.load()),
		},
	}
}
