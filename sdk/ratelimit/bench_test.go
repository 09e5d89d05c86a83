package ratelimit

import "testing"

// These run each limiter from b.RunParallel, so that -cpu 1,2 shows how
// Allow behaves when goroutines on different CPUs share one limiter:
//
//	go test -run '^$' -bench . -cpu 1,2 -count 5
//
// bench/resilience compares the same workloads with the peers.

func parallel(b *testing.B, f func()) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			f()
		}
	})
}

// BenchmarkTokenBucketAllow: a bucket with room for every call.
func BenchmarkTokenBucketAllow(b *testing.B) {
	l := NewTokenBucket(1e9, 1e7)
	parallel(b, func() { _ = l.Allow() })
}

// BenchmarkTokenBucketAllowBatched: the same with WithLocalBatch.
func BenchmarkTokenBucketAllowBatched(b *testing.B) {
	l := NewTokenBucket(1e9, 1e7, WithLocalBatch(64))
	parallel(b, func() { _ = l.Allow() })
}

// BenchmarkTokenBucketSaturated: a bucket that refuses nearly every call.
func BenchmarkTokenBucketSaturated(b *testing.B) {
	l := NewTokenBucket(10, 1)
	parallel(b, func() { _ = l.Allow() })
}

// BenchmarkTokenBucketNearlyEmpty: a bucket whose rate is about what the
// callers ask, so that admissions and refusals alternate.
func BenchmarkTokenBucketNearlyEmpty(b *testing.B) {
	l := NewTokenBucket(2e7, 100)
	parallel(b, func() { _ = l.Allow() })
}
