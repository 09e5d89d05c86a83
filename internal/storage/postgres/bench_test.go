package postgres

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage/postgres/pgtest"
)

// BenchmarkCommitToNotify measures what one replica's change costs before
// another replica hears of it: a state commit on store a (version
// allocated, NOTIFY in the transaction) until store b's change feed
// delivers it, one commit at a time. It reports the commit's and the
// notification's p50 and p99 beside a bare round trip (SELECT 1) on the
// same server, the floor any of them pays:
//
//	go test -run '^$' -bench CommitToNotify -benchtime 2000x ./internal/storage/postgres/
func BenchmarkCommitToNotify(b *testing.B) {
	dsn := pgtest.NewDatabase(b)
	ctx := context.Background()
	a := mustOpenOpts(b, dsn, Options{Replica: "a"})
	rb := mustOpenOpts(b, dsn, Options{Replica: "b"})
	got := listenStates(b, rb, 16)
	var rtt, commit, notify []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		var one int
		if err := a.pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
			b.Fatal(err)
		}
		rtt = append(rtt, time.Since(t0))
		t1 := time.Now()
		if err := a.SaveServiceStates(ctx, []brownout.StateChange{state("checkout", i%4)}); err != nil {
			b.Fatal(err)
		}
		commit = append(commit, time.Since(t1))
		notify = append(notify, (<-got).Sub(t1))
	}
	b.StopTimer()
	reportPercentiles(b, "rtt", rtt)
	reportPercentiles(b, "commit", commit)
	reportPercentiles(b, "notify", notify)
}

// BenchmarkFencedCommitToNotify is BenchmarkCommitToNotify for what a
// leader commits when an override changes ten services: ten states, each
// with its level change, in one fenced transaction, until the other
// replica has heard of the last of them:
//
//	go test -run '^$' -bench FencedCommitToNotify -benchtime 1000x ./internal/storage/postgres/
func BenchmarkFencedCommitToNotify(b *testing.B) {
	dsn := pgtest.NewDatabase(b)
	ctx := context.Background()
	a := mustOpenOpts(b, dsn, Options{Replica: "a"})
	rb := mustOpenOpts(b, dsn, Options{Replica: "b"})
	term, err := a.Lead(ctx, "a", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	fctx := brownout.WithFence(ctx, brownout.Fence{Replica: "a", Term: term})
	const services = 10
	got := listenStates(b, rb, 4*services)
	var commit, notify []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch := make([]brownout.StateChange, services)
		for j := range batch {
			batch[j] = state(fmt.Sprintf("svc-%02d", j), i%4)
			batch[j].Changes = []brownout.LevelChange{{Kind: brownout.KindEffective, FromLevel: (i + 3) % 4, ToLevel: i % 4,
				At: batch[j].State.ChangedAt, Cause: brownout.CauseOverride, Inputs: []byte(`{}`)}}
		}
		t1 := time.Now()
		if err := a.SaveServiceStates(fctx, batch); err != nil {
			b.Fatal(err)
		}
		commit = append(commit, time.Since(t1))
		var last time.Time
		for range services {
			last = <-got
		}
		notify = append(notify, last.Sub(t1))
	}
	b.StopTimer()
	reportPercentiles(b, "commit", commit)
	reportPercentiles(b, "notify", notify)
}

// listenStates listens on rb's change feed until the benchmark ends and
// returns a channel that gets the time each state change arrives; it
// returns once the feed is connected.
func listenStates(b *testing.B, rb *DB, buffer int) <-chan time.Time {
	got := make(chan time.Time, buffer)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	ready := make(chan struct{})
	go func() {
		_ = rb.Listen(ctx, func(c brownout.Change) {
			switch c.Kind {
			case brownout.ChangeResync:
				close(ready)
			case brownout.ChangeState:
				got <- time.Now()
			}
		})
	}()
	<-ready
	return got
}

// reportPercentiles reports the p50 and p99 of d in milliseconds as
// name-p50-ms and name-p99-ms.
func reportPercentiles(b *testing.B, name string, d []time.Duration) {
	slices.Sort(d)
	at := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(at(0.5), name+"-p50-ms")
	b.ReportMetric(at(0.99), name+"-p99-ms")
}
