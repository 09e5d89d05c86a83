package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/storage/storagetest"

	"github.com/brownout-io/brownout"
)

func TestRollupAndOldRanges(t *testing.T) {
	t.Parallel()
	db := MustOpenDB(t)
	ctx := context.Background()
	checkout := storagetest.GenSamples("checkout", storagetest.TS(0), time.Second, 20*60)
	storagetest.MustWrite(t, db, checkout)
	storagetest.MustWrite(t, db, storagetest.GenSamples("search", storagetest.TS(0), 2*time.Second, 10*30))

	// Minutes up to 18 are complete; 18 and 19 stay raw only.
	if err := db.Rollup(ctx, storagetest.TS(18*time.Minute+30*time.Second)); err != nil {
		t.Fatal(err)
	}
	var n, maxMinute int64
	if err := db.read.QueryRow(`SELECT count(*), max(minute) FROM sample_rollups WHERE series_id = (SELECT id FROM series WHERE name = 'checkout')`).Scan(&n, &maxMinute); err != nil {
		t.Fatal(err)
	}
	if n != 18 || maxMinute != storagetest.TS(17*time.Minute).UnixNano() {
		t.Fatalf("got %d rollups up to %v, want 18 up to %v", n, time.Unix(0, maxMinute).UTC(), storagetest.TS(17*time.Minute))
	}
	// Idempotent.
	if err := db.Rollup(ctx, storagetest.TS(18*time.Minute+30*time.Second)); err != nil {
		t.Fatal(err)
	}

	// While raw samples are all there, whole-minute steps read rolled-up
	// minutes from the rollups and the rest raw, with the same answer.
	for _, tt := range []struct {
		name     string
		from, to time.Time
		step     time.Duration
	}{
		{"minutes", storagetest.TS(0), storagetest.TS(20 * time.Minute), time.Minute},
		{"ragged ends", storagetest.TS(90 * time.Second), storagetest.TS(19*time.Minute + 10*time.Second), time.Minute},
		{"two minutes, odd start", storagetest.TS(61 * time.Second), storagetest.TS(20 * time.Minute), 2 * time.Minute},
		{"hour", storagetest.TS(-time.Hour), storagetest.TS(time.Hour), time.Hour},
		{"sub-minute stays raw", storagetest.TS(0), storagetest.TS(20 * time.Minute), 30 * time.Second},
	} {
		t.Run("before prune/"+tt.name, func(t *testing.T) {
			got, err := db.QuerySamples(ctx, "checkout", tt.from, tt.to, tt.step)
			if err != nil {
				t.Fatal(err)
			}
			storagetest.EqualPoints(t, got, storagetest.Aggregate(checkout, tt.from, tt.to, tt.step))
		})
	}
	// And they really come from the rollups: a doctored rollup shows.
	if _, err := db.write.Exec(`UPDATE sample_rollups SET max_instances = 99 WHERE minute = ?`, storagetest.TS(3*time.Minute).UnixNano()); err != nil {
		t.Fatal(err)
	}
	got, _ := db.QuerySamples(ctx, "checkout", storagetest.TS(3*time.Minute), storagetest.TS(4*time.Minute), time.Minute)
	if len(got) != 1 || got[0].Instances != 99 {
		t.Fatalf("minute step did not read the rollup: %+v", got)
	}
	got, _ = db.QuerySamples(ctx, "checkout", storagetest.TS(3*time.Minute), storagetest.TS(4*time.Minute), 30*time.Second)
	if len(got) != 2 || got[0].Instances == 99 {
		t.Fatalf("sub-minute step read the rollup: %+v", got)
	}
	// Undo the doctoring.
	if _, err := db.write.Exec(`UPDATE sample_rollups SET max_instances = ? WHERE minute = ?`,
		storagetest.Aggregate(checkout, storagetest.TS(3*time.Minute), storagetest.TS(4*time.Minute), time.Minute)[0].Instances, storagetest.TS(3*time.Minute).UnixNano()); err != nil {
		t.Fatal(err)
	}

	// Keep raw samples from minute 10 on.
	deleted, err := db.Prune(ctx, storagetest.TS(20*time.Minute), 10*time.Minute, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := 10*60 + 300; deleted != want {
		t.Fatalf("pruned %d rows, want %d", deleted, want)
	}

	tests := []struct {
		name     string
		from, to time.Time
		step     time.Duration
		// wantStep is the step the answer is computed at.
		wantStep time.Duration
	}{
		{"whole range, minute steps", storagetest.TS(0), storagetest.TS(20 * time.Minute), time.Minute, time.Minute},
		{"sub-minute step rounds up", storagetest.TS(0), storagetest.TS(20 * time.Minute), 10 * time.Second, time.Minute},
		{"step rounds up to whole minutes", storagetest.TS(0), storagetest.TS(20 * time.Minute), 90 * time.Second, 2 * time.Minute},
		{"five minute steps", storagetest.TS(0), storagetest.TS(20 * time.Minute), 5 * time.Minute, 5 * time.Minute},
		{"old part only", storagetest.TS(2 * time.Minute), storagetest.TS(7 * time.Minute), time.Minute, time.Minute},
		{"recent part keeps its step", storagetest.TS(12 * time.Minute), storagetest.TS(20 * time.Minute), 10 * time.Second, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.QuerySamples(ctx, "checkout", tt.from, tt.to, tt.step)
			if err != nil {
				t.Fatal(err)
			}
			// Rollups keep exact sums, so the answer equals the raw
			// aggregation at the effective step.
			storagetest.EqualPoints(t, got, storagetest.Aggregate(checkout, tt.from, tt.to, tt.wantStep))
		})
	}

	// A late sample in a rolled-up minute inside the redo window is picked
	// up by the next rollup.
	late := brownout.Sample{Service: "checkout", At: storagetest.TS(17*time.Minute + 500*time.Millisecond), CPUPercent: 100, Instances: 50}
	storagetest.MustWrite(t, db, []brownout.Sample{late})
	if err := db.Rollup(ctx, storagetest.TS(19*time.Minute)); err != nil {
		t.Fatal(err)
	}
	var maxInst int
	if err := db.read.QueryRow(`SELECT max_instances FROM sample_rollups WHERE minute = ?`, storagetest.TS(17*time.Minute).UnixNano()).Scan(&maxInst); err != nil {
		t.Fatal(err)
	}
	if maxInst != 50 {
		t.Fatalf("late sample not rolled up: max_instances %d", maxInst)
	}
}

func TestPruneBatches(t *testing.T) {
	t.Parallel()
	db := MustOpenDB(t)
	ctx := context.Background()
	for _, s := range []string{"a", "b", "c"} {
		storagetest.MustWrite(t, db, storagetest.GenSamples(s, storagetest.TS(0), time.Second, 1000))
	}
	if err := db.Rollup(ctx, storagetest.TS(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var batches int
	db.SetObserver(func(op string, _ time.Duration) {
		if op == "prune" {
			batches++
		}
	})
	// Raw older than storagetest.TS(700s) goes (700 per series), rollups older than
	// storagetest.TS(5m) go (5 per series).
	n, err := db.Prune(ctx, storagetest.TS(1000*time.Second), 300*time.Second, 1000*time.Second-5*time.Minute, 64)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * (700 + 5); n != want {
		t.Fatalf("deleted %d, want %d", n, want)
	}
	// 700 rows in batches of 64: 11 batches (the last one short) per series,
	// plus one for the rollups.
	if want := 3 * (11 + 1); batches != want {
		t.Fatalf("got %d batches, want %d", batches, want)
	}
	var raw, oldest, rollups int64
	if err := db.read.QueryRow(`SELECT count(*), min(at) FROM samples`).Scan(&raw, &oldest); err != nil {
		t.Fatal(err)
	}
	if raw != 3*300 || oldest != storagetest.TS(700*time.Second).UnixNano() {
		t.Fatalf("left %d raw rows from %v, want 900 from %v", raw, time.Unix(0, oldest).UTC(), storagetest.TS(700*time.Second))
	}
	if err := db.read.QueryRow(`SELECT count(*) FROM sample_rollups`).Scan(&rollups); err != nil {
		t.Fatal(err)
	}
	if rollups != 3*(17-5) {
		t.Fatalf("left %d rollups, want %d", rollups, 3*12)
	}
	// Nothing left to prune.
	if n, err := db.Prune(ctx, storagetest.TS(1000*time.Second), 300*time.Second, 1000*time.Second-5*time.Minute, 64); err != nil || n != 0 {
		t.Fatalf("second prune: deleted %d, %v", n, err)
	}
}
