package sqlite

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/storage/storagetest"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/levels"
	"github.com/brownout-io/brownout/internal/storage"
)

func countSamples(tb testing.TB, db *DB) int {
	tb.Helper()
	var n int
	if err := db.read.QueryRow(`SELECT count(*) FROM samples`).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestSampleWriterFlushesOnClose(t *testing.T) {
	t.Parallel()
	db := MustOpenDB(t)
	// A flush interval far beyond the test: only Close writes.
	w := storage.NewSampleWriter(db, time.Hour, 1000, nil)
	for _, s := range storagetest.GenSamples("checkout", storagetest.TS(0), time.Second, 250) {
		if !w.Enqueue(s) {
			t.Fatal("enqueue refused with room in the queue")
		}
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := countSamples(t, db); got != 250 {
		t.Fatalf("got %d samples after Close, want 250", got)
	}
	if w.Enqueue(brownout.Sample{Service: "checkout", At: storagetest.TS(time.Hour)}) {
		t.Fatal("enqueue after Close accepted")
	}
	if w.Dropped() != 1 {
		t.Fatalf("got %d dropped, want 1", w.Dropped())
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestInvalidSamplesRefused(t *testing.T) {
	t.Parallel()
	db := MustOpenDB(t)
	ctx := context.Background()
	good := brownout.Sample{Service: "checkout", At: storagetest.TS(0)}
	tests := []struct {
		name string
		s    brownout.Sample
	}{
		{"zero time", brownout.Sample{Service: "checkout"}},
		{"empty service", brownout.Sample{At: storagetest.TS(0)}},
		{"bad service", brownout.Sample{Service: "Check Out", At: storagetest.TS(0)}},
	}
	w := storage.NewSampleWriter(db, time.Hour, 10, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storagetest.WantCode(t, db.WriteSamples(ctx, []brownout.Sample{good, tt.s}), brownout.EBADREQUEST)
			if w.Enqueue(tt.s) {
				t.Fatal("Enqueue accepted an invalid sample")
			}
		})
	}
	if got := countSamples(t, db); got != 0 {
		t.Fatalf("a refused batch stored %d samples", got)
	}
	if !w.Enqueue(good) {
		t.Fatal("Enqueue refused a valid sample")
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := w.Dropped(), uint64(len(tests)); got != want {
		t.Fatalf("got %d dropped, want %d", got, want)
	}
	if got := countSamples(t, db); got != 1 {
		t.Fatalf("got %d samples, want 1", got)
	}
}

func TestSampleWriterFlushesOnTimerAndSize(t *testing.T) {
	t.Parallel()
	db := MustOpenDB(t)
	var flushes atomic.Int64
	db.SetObserver(func(op string, _ time.Duration) {
		if op == "write_samples" {
			flushes.Add(1)
		}
	})
	w := storage.NewSampleWriter(db, 20*time.Millisecond, 100, nil)
	defer w.Close(context.Background())
	samples := storagetest.GenSamples("checkout", storagetest.TS(0), time.Second, 350)
	for _, s := range samples[:50] {
		w.Enqueue(s)
	}
	// Written without Close, by the timer.
	deadline := time.Now().Add(5 * time.Second)
	for countSamples(t, db) < 50 {
		if time.Now().After(deadline) {
			t.Fatal("timer flush never wrote")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, s := range samples[50:] {
		for !w.Enqueue(s) {
			time.Sleep(time.Millisecond)
		}
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := countSamples(t, db); got != 350 {
		t.Fatalf("got %d samples, want 350", got)
	}
	// No batch holds more than maxBatch: 300 more samples need >= 3 writes.
	if got := flushes.Load(); got < 4 {
		t.Fatalf("got %d flushes, want >= 4", got)
	}
}

func TestSampleWriterCountsDrops(t *testing.T) {
	t.Parallel()
	db := MustOpenDB(t)
	ctx := context.Background()
	const maxBatch = 10
	w := storage.NewSampleWriter(db, time.Millisecond, maxBatch, nil)

	// Hold the single write connection so that the writer blocks in its
	// first flush and the queue fills up.
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	accepted, refused := 0, 0
	for _, s := range storagetest.GenSamples("checkout", storagetest.TS(0), time.Second, n) {
		if w.Enqueue(s) {
			accepted++
		} else {
			refused++
		}
	}
	// At most one batch in flight plus a full queue (4×maxBatch).
	if accepted > 5*maxBatch {
		t.Fatalf("accepted %d with the writer blocked, want <= %d", accepted, 5*maxBatch)
	}
	if got := w.Dropped(); got != uint64(refused) || refused < n-5*maxBatch {
		t.Fatalf("got %d dropped, %d refused; want equal and >= %d", got, refused, n-5*maxBatch)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := countSamples(t, db); got != accepted {
		t.Fatalf("stored %d samples, accepted %d", got, accepted)
	}
}

// TestConcurrentReadersAndWriters runs the sample writer, config writers
// and readers at once; under -race it also checks the package's own
// synchronisation. No SQLITE_BUSY may surface.
func TestConcurrentReadersAndWriters(t *testing.T) {
	t.Parallel()
	db := MustOpenDB(t)
	ctx := context.Background()
	w := storage.NewSampleWriter(db, 5*time.Millisecond, 50, nil)

	const workers = 4
	const rounds = 30
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	var enqueued atomic.Int64
	for i := range workers {
		// Sample producers.
		wg.Go(func() {
			svc := fmt.Sprintf("svc-%d", i)
			for j, s := range storagetest.GenSamples(svc, storagetest.TS(0), time.Second, rounds*10) {
				if w.Enqueue(s) {
					enqueued.Add(1)
				}
				if j%10 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		})
		// Config, state and audit writers.
		wg.Go(func() {
			svc := fmt.Sprintf("svc-%d", i)
			for j := range rounds {
				a := brownout.AuditEntry{At: storagetest.TS(time.Duration(j) * time.Second), Actor: "w", Action: "put", Target: "service:" + svc}
				if err := db.PutServiceThresholds(ctx, svc, levels.Default(), a); err != nil {
					report(err)
				}
				st := brownout.ServiceState{Name: svc, Version: uint64(j + 1), Level: j % 4, ChangedAt: storagetest.TS(0)}
				if err := db.SaveServiceState(ctx, st, []brownout.LevelChange{{Kind: brownout.KindEffective, At: storagetest.TS(0), Version: st.Version}}); err != nil {
					report(err)
				}
				o := brownout.Override{ID: fmt.Sprintf("%s-%d", svc, j), Service: svc, Level: 1, Reason: "r", CreatedAt: storagetest.TS(0)}
				if err := db.CreateOverride(ctx, o, a); err != nil {
					report(err)
				}
			}
		})
		// Readers.
		wg.Go(func() {
			svc := fmt.Sprintf("svc-%d", i)
			for range rounds {
				if _, err := db.QuerySamples(ctx, svc, storagetest.TS(0), storagetest.TS(time.Hour), time.Minute); err != nil {
					report(err)
				}
				if _, err := db.ListAudit(ctx, brownout.Filter{Service: svc, Limit: 10}); err != nil {
					report(err)
				}
				if _, err := db.LoadServices(ctx); err != nil {
					report(err)
				}
				if _, err := db.ActiveOverrides(ctx, storagetest.TS(0)); err != nil {
					report(err)
				}
				if _, _, err := db.ServiceThresholds(ctx, svc); err != nil {
					report(err)
				}
			}
		})
	}
	// Retention alongside.
	wg.Go(func() {
		for range 10 {
			if err := db.Rollup(ctx, storagetest.TS(time.Hour)); err != nil {
				report(err)
			}
			if _, err := db.Prune(ctx, storagetest.TS(10*time.Minute), 5*time.Minute, time.Hour, 20); err != nil {
				report(err)
			}
		}
	})
	wg.Wait()
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if w.Dropped() != uint64(workers*rounds*10)-uint64(enqueued.Load()) {
		t.Fatalf("dropped %d, enqueued %d of %d", w.Dropped(), enqueued.Load(), workers*rounds*10)
	}
	states, err := db.LoadServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range states {
		if st.Version != rounds {
			t.Errorf("%s: version %d, want %d", st.Name, st.Version, rounds)
		}
	}
}

func TestRunRetention(t *testing.T) {
	t.Parallel()
	db := MustOpenDB(t)
	// RunRetention reads the clock, so the samples are placed around now.
	now := time.Now()
	start := now.Add(-2 * time.Hour).Truncate(time.Minute)
	storagetest.MustWrite(t, db, storagetest.GenSamples("checkout", start, 10*time.Second, 2*360))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		storage.RunRetention(ctx, db, 10*time.Millisecond, time.Hour, 90*time.Minute, nil)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var oldestRaw, oldestRollup, rollups int64
		err := db.read.QueryRow(`SELECT (SELECT min(at) FROM samples), (SELECT min(minute) FROM sample_rollups), (SELECT count(*) FROM sample_rollups)`).
			Scan(&oldestRaw, &oldestRollup, &rollups)
		if err == nil && oldestRaw >= now.Add(-time.Hour).UnixNano() &&
			oldestRollup >= now.Add(-90*time.Minute).Add(-time.Minute).UnixNano() && rollups >= 85 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retention did not converge: oldest raw %v, oldest rollup %v, %d rollups (err %v)",
				time.Unix(0, oldestRaw), time.Unix(0, oldestRollup), rollups, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunRetention did not return after cancel")
	}
	// What the raw samples lost, the rollups still answer.
	got, err := db.QuerySamples(context.Background(), "checkout", start, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 85 {
		t.Fatalf("got %d points over the last 2 h, want >= 85 (90 min of rollups)", len(got))
	}
}
