package ratelimit_test

import (
	"context"
	"fmt"
	"time"

	"github.com/brownout-io/brownout/sdk/ratelimit"
	"github.com/brownout-io/brownout/sdk/resilience/clock"
)

func ExampleTokenBucket() {
	clk := clock.NewManual(0)                                      // leave unset in production
	l := ratelimit.NewTokenBucket(10, 3, ratelimit.WithClock(clk)) // 10/s, bursts of 3
	for i := 0; i < 4; i++ {
		fmt.Print(l.Allow(), " ")
	}
	clk.Advance(100 * time.Millisecond)
	fmt.Println(l.Allow())
	// Output: true true true false true
}

func ExampleTokenBucket_Wait() {
	// The precise clock makes the waits exact to the timer; the default
	// coarse clock has about a millisecond of resolution.
	l := ratelimit.NewTokenBucket(ratelimit.Every(time.Millisecond), 1, ratelimit.WithClock(clock.Precise{}))
	start := time.Now()
	for i := 0; i < 5; i++ {
		if err := l.Wait(context.Background()); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println(time.Since(start) >= 4*time.Millisecond)
	// Output: true
}

func ExampleTokenBucket_Reserve() {
	clk := clock.NewManual(0)
	l := ratelimit.NewTokenBucket(2, 1, ratelimit.WithClock(clk))
	l.Allow()
	r := l.Reserve()
	fmt.Println(r.OK(), r.Delay())
	r.Cancel() // not acting after all: give the token back
	fmt.Println(l.Tokens())
	// Output:
	// true 500ms
	// 0
}

func ExampleSlidingWindow() {
	clk := clock.NewManual(0)
	w := ratelimit.NewSlidingWindow(100, time.Minute, ratelimit.WithClock(clk))
	n := 0
	for w.Allow() {
		n++
	}
	clk.Advance(90 * time.Second) // half of the previous window still counts
	m := 0
	for w.Allow() {
		m++
	}
	fmt.Println(n, m)
	// Output: 100 50
}

func ExampleKeyed() {
	perClient := ratelimit.NewKeyed(ratelimit.KeyedConfig{MaxKeys: 100000, IdleTTL: 10 * time.Minute},
		func(string) *ratelimit.TokenBucket { return ratelimit.NewTokenBucket(5, 5) })
	allowed := 0
	for i := 0; i < 10; i++ {
		if perClient.Allow("tenant-a") {
			allowed++
		}
	}
	fmt.Println(allowed, perClient.Allow("tenant-b"))
	// Output: 5 true
}
