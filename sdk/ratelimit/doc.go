// Package ratelimit provides lock-free rate limiters: a token bucket with the
// documented semantics of golang.org/x/time/rate (Allow, AllowN, Wait,
// Reserve), a sliding-window counter, and a keyed wrapper that keeps one
// limiter per key in bounded memory.
//
// # Time
//
// Limiters read a monotonic clock (see package clock); by default the coarse
// clock, which is refreshed every millisecond and costs an atomic load. A
// reading that is late or stale (older than one already seen) never grants
// extra tokens: the bucket's state only moves forward in time, and a stale
// reading simply sees fewer tokens. Tests inject a clock.Manual through
// WithClock.
//
// # Token bucket
//
// TokenBucket is a generic cell rate algorithm (GCRA) implementation: its
// whole state is one int64, the theoretical arrival time of the next event,
// updated with compare-and-swap. It is equivalent to a bucket of capacity
// burst refilled at r tokens per second, full at creation. WithLocalBatch
// trades a bounded amount of exactness for scaling across CPUs.
//
// # Sliding window
//
// SlidingWindow approximates "limit events per window" in one word: the
// current fixed window's count plus the previous window's count weighted by
// how much of it still overlaps. It admits at most limit events per fixed
// window, but up to 2×limit−1 in some trailing interval of length window.
// SlidingLog is exact — at most limit events in any interval of length
// window — at the cost of a timestamp per admitted event and a mutex.
//
// # Keyed
//
// Keyed keeps a limiter per key (client id, tenant, IP) in a sharded map
// with a bound on the number of keys, evicting the least recently used key
// of a shard when it is full and keys idle for longer than a TTL.
package ratelimit
