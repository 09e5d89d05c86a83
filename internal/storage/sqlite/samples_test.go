package sqlite

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

// genSamples returns n samples of service, every `every` from start, with
// values that vary so that means, weights and maxima are all tested.
func genSamples(service string, start time.Time, every time.Duration, n int) []brownout.Sample {
	out := make([]brownout.Sample, n)
	for i := range out {
		out[i] = brownout.Sample{
			Service:       service,
			At:            start.Add(time.Duration(i) * every),
			CPUPercent:    float64(i%100) + 0.5,
			MemoryPercent: float64((i*7)%100) + 0.25,
			Requests:      float64(10 + (i*13)%50),
			Errors:        float64(i % 5),
			ErrorRate:     float64(i%5) / float64(10+(i*13)%50),
			Instances:     1 + i%4,
		}
	}
	return out
}

// aggregate is the reference for QuerySamples on raw samples.
func aggregate(samples []brownout.Sample, from, to time.Time, step time.Duration) []brownout.SamplePoint {
	type acc struct {
		n, cpu, mem, req, errs float64
		inst                   int
	}
	var order []int64
	accs := map[int64]*acc{}
	for _, s := range samples {
		if s.At.Before(from) || !s.At.Before(to) {
			continue
		}
		b := floorDiv(s.At.UnixNano(), int64(step)) * int64(step)
		a, ok := accs[b]
		if !ok {
			a = &acc{}
			accs[b] = a
			order = append(order, b)
		}
		a.n++
		a.cpu += s.CPUPercent
		a.mem += s.MemoryPercent
		a.req += s.Requests
		a.errs += s.Errors
		a.inst = max(a.inst, s.Instances)
	}
	out := []brownout.SamplePoint{}
	for _, b := range order {
		a := accs[b]
		p := brownout.SamplePoint{At: time.Unix(0, b).UTC(), CPUPercent: a.cpu / a.n, MemoryPercent: a.mem / a.n, Instances: a.inst}
		if a.req > 0 {
			p.ErrorRate = a.errs / a.req
		}
		out = append(out, p)
	}
	return out
}

func equalPoints(tb testing.TB, got, want []brownout.SamplePoint) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("got %d points, want %d\ngot  %+v\nwant %+v", len(got), len(want), got, want)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*max(1, math.Abs(b)) }
	for i := range got {
		g, w := got[i], want[i]
		if !g.At.Equal(w.At) || !near(g.CPUPercent, w.CPUPercent) || !near(g.MemoryPercent, w.MemoryPercent) ||
			!near(g.ErrorRate, w.ErrorRate) || g.Instances != w.Instances {
			tb.Fatalf("point %d: got %+v, want %+v", i, g, w)
		}
	}
}

func mustWrite(tb testing.TB, db *DB, samples []brownout.Sample) {
	tb.Helper()
	for len(samples) > 0 {
		n := min(len(samples), 5000)
		if err := db.WriteSamples(context.Background(), samples[:n]); err != nil {
			tb.Fatal(err)
		}
		samples = samples[n:]
	}
}

func TestQuerySamplesRaw(t *testing.T) {
	t.Parallel()
	db := MustOpenDB(t)
	ctx := context.Background()
	checkout := genSamples("checkout", ts(0), time.Second, 600)
	mustWrite(t, db, checkout)
	mustWrite(t, db, genSamples("search", ts(0), time.Second, 600))

	tests := []struct {
		name     string
		from, to time.Time
		step     time.Duration
	}{
		{"1m steps", ts(0), ts(10 * time.Minute), time.Minute},
		{"1s steps", ts(0), ts(10 * time.Minute), time.Second},
		{"small step folded in Go", ts(0), ts(10 * time.Minute), 3 * time.Second},
		{"small step from inside a bucket", ts(time.Second), ts(5*time.Minute + 500*time.Millisecond), 4 * time.Second},
		{"sub-second step", ts(0), ts(time.Minute), 250 * time.Millisecond},
		{"odd step aligned to the epoch", ts(0), ts(10 * time.Minute), 7 * time.Second},
		{"from inside a bucket", ts(90 * time.Second), ts(5 * time.Minute), time.Minute},
		{"range beyond the data", ts(-time.Hour), ts(time.Hour), 15 * time.Minute},
		{"range before the data", ts(-time.Hour), ts(-time.Minute), time.Minute},
		{"one bucket", ts(0), ts(10 * time.Minute), time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.QuerySamples(ctx, "checkout", tt.from, tt.to, tt.step)
			if err != nil {
				t.Fatal(err)
			}
			equalPoints(t, got, aggregate(checkout, tt.from, tt.to, tt.step))
			if got == nil {
				t.Fatal("got nil, want an empty slice")
			}
		})
	}

	// Bucket starts are aligned to step since the epoch.
	got, _ := db.QuerySamples(ctx, "checkout", ts(0), ts(time.Minute), 7*time.Second)
	for _, p := range got {
		if p.At.UnixNano()%int64(7*time.Second) != 0 {
			t.Fatalf("bucket %v not aligned to 7s since the epoch", p.At)
		}
	}
	if got, err := db.QuerySamples(ctx, "nope", ts(0), ts(time.Hour), time.Minute); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("unknown service: got %v, %v; want empty", got, err)
	}
}

func TestQuerySamplesWeighting(t *testing.T) {
	t.Parallel()
	db := MustOpenDB(t)
	ctx := context.Background()
	mustWrite(t, db, []brownout.Sample{
		{Service: "api", At: ts(0), CPUPercent: 10, MemoryPercent: 40, Requests: 100, Errors: 10, ErrorRate: 0.1, Instances: 2},
		{Service: "api", At: ts(time.Second), CPUPercent: 30, MemoryPercent: 60, Requests: 900, Errors: 0, ErrorRate: 0, Instances: 5},
		{Service: "api", At: ts(2 * time.Second), CPUPercent: 50, MemoryPercent: 80, Requests: 0, Errors: 0, ErrorRate: 0, Instances: 3},
		// A quiet minute: no requests at all.
		{Service: "api", At: ts(time.Minute), CPUPercent: 1, MemoryPercent: 2, Requests: 0, Errors: 0, Instances: 1},
	})
	got, err := db.QuerySamples(ctx, "api", ts(0), ts(2*time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := []brownout.SamplePoint{
		// Σerrors/Σrequests = 10/1000, not the mean of rates (0.033…).
		{At: ts(0), CPUPercent: 30, MemoryPercent: 60, ErrorRate: 0.01, Instances: 5},
		{At: ts(time.Minute), CPUPercent: 1, MemoryPercent: 2, ErrorRate: 0, Instances: 1},
	}
	equalPoints(t, got, want)

	// A later write for the same instant replaces the sample.
	mustWrite(t, db, []brownout.Sample{{Service: "api", At: ts(time.Minute), CPUPercent: 9, MemoryPercent: 9, Instances: 9}})
	got, _ = db.QuerySamples(ctx, "api", ts(time.Minute), ts(2*time.Minute), time.Minute)
	equalPoints(t, got, []brownout.SamplePoint{{At: ts(time.Minute), CPUPercent: 9, MemoryPercent: 9, Instances: 9}})
}

func TestQuerySamplesBadRequest(t *testing.T) {
	t.Parallel()
	db := MustOpenDB(t)
	ctx := context.Background()
	tests := []struct {
		name     string
		from, to time.Time
		step     time.Duration
		field    string
	}{
		{"zero step", ts(0), ts(time.Hour), 0, "step"},
		{"negative step", ts(0), ts(time.Hour), -time.Second, "step"},
		{"empty range", ts(0), ts(0), time.Second, "to"},
		{"reversed range", ts(time.Hour), ts(0), time.Second, "to"},
		{"too many points", ts(0), ts(storage.MaxPoints*time.Second + time.Second), time.Second, "step"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.QuerySamples(ctx, "checkout", tt.from, tt.to, tt.step)
			wantCode(t, err, brownout.EBADREQUEST)
			if e := err.(*brownout.Error); e.Field != tt.field {
				t.Fatalf("got field %q, want %q", e.Field, tt.field)
			}
		})
	}
	// Exactly MaxPoints is fine.
	if _, err := db.QuerySamples(ctx, "checkout", ts(0), ts(storage.MaxPoints*time.Second), time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestRollupAndOldRanges(t *testing.T) {
	t.Parallel()
	db := MustOpenDB(t)
	ctx := context.Background()
	checkout := genSamples("checkout", ts(0), time.Second, 20*60)
	mustWrite(t, db, checkout)
	mustWrite(t, db, genSamples("search", ts(0), 2*time.Second, 10*30))

	// Minutes up to 18 are complete; 18 and 19 stay raw only.
	if err := db.Rollup(ctx, ts(18*time.Minute+30*time.Second)); err != nil {
		t.Fatal(err)
	}
	var n, maxMinute int64
	if err := db.read.QueryRow(`SELECT count(*), max(minute) FROM sample_rollups WHERE series_id = (SELECT id FROM series WHERE name = 'checkout')`).Scan(&n, &maxMinute); err != nil {
		t.Fatal(err)
	}
	if n != 18 || maxMinute != ts(17*time.Minute).UnixNano() {
		t.Fatalf("got %d rollups up to %v, want 18 up to %v", n, time.Unix(0, maxMinute).UTC(), ts(17*time.Minute))
	}
	// Idempotent.
	if err := db.Rollup(ctx, ts(18*time.Minute+30*time.Second)); err != nil {
		t.Fatal(err)
	}

	// While raw samples are all there, whole-minute steps read rolled-up
	// minutes from the rollups and the rest raw, with the same answer.
	for _, tt := range []struct {
		name     string
		from, to time.Time
		step     time.Duration
	}{
		{"minutes", ts(0), ts(20 * time.Minute), time.Minute},
		{"ragged ends", ts(90 * time.Second), ts(19*time.Minute + 10*time.Second), time.Minute},
		{"two minutes, odd start", ts(61 * time.Second), ts(20 * time.Minute), 2 * time.Minute},
		{"hour", ts(-time.Hour), ts(time.Hour), time.Hour},
		{"sub-minute stays raw", ts(0), ts(20 * time.Minute), 30 * time.Second},
	} {
		t.Run("before prune/"+tt.name, func(t *testing.T) {
			got, err := db.QuerySamples(ctx, "checkout", tt.from, tt.to, tt.step)
			if err != nil {
				t.Fatal(err)
			}
			equalPoints(t, got, aggregate(checkout, tt.from, tt.to, tt.step))
		})
	}
	// And they really come from the rollups: a doctored rollup shows.
	if _, err := db.write.Exec(`UPDATE sample_rollups SET max_instances = 99 WHERE minute = ?`, ts(3*time.Minute).UnixNano()); err != nil {
		t.Fatal(err)
	}
	got, _ := db.QuerySamples(ctx, "checkout", ts(3*time.Minute), ts(4*time.Minute), time.Minute)
	if len(got) != 1 || got[0].Instances != 99 {
		t.Fatalf("minute step did not read the rollup: %+v", got)
	}
	got, _ = db.QuerySamples(ctx, "checkout", ts(3*time.Minute), ts(4*time.Minute), 30*time.Second)
	if len(got) != 2 || got[0].Instances == 99 {
		t.Fatalf("sub-minute step read the rollup: %+v", got)
	}
	// Undo the doctoring.
	if _, err := db.write.Exec(`UPDATE sample_rollups SET max_instances = ? WHERE minute = ?`,
		aggregate(checkout, ts(3*time.Minute), ts(4*time.Minute), time.Minute)[0].Instances, ts(3*time.Minute).UnixNano()); err != nil {
		t.Fatal(err)
	}

	// Keep raw samples from minute 10 on.
	deleted, err := db.Prune(ctx, ts(20*time.Minute), 10*time.Minute, 0, 100)
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
		{"whole range, minute steps", ts(0), ts(20 * time.Minute), time.Minute, time.Minute},
		{"sub-minute step rounds up", ts(0), ts(20 * time.Minute), 10 * time.Second, time.Minute},
		{"step rounds up to whole minutes", ts(0), ts(20 * time.Minute), 90 * time.Second, 2 * time.Minute},
		{"five minute steps", ts(0), ts(20 * time.Minute), 5 * time.Minute, 5 * time.Minute},
		{"old part only", ts(2 * time.Minute), ts(7 * time.Minute), time.Minute, time.Minute},
		{"recent part keeps its step", ts(12 * time.Minute), ts(20 * time.Minute), 10 * time.Second, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.QuerySamples(ctx, "checkout", tt.from, tt.to, tt.step)
			if err != nil {
				t.Fatal(err)
			}
			// Rollups keep exact sums, so the answer equals the raw
			// aggregation at the effective step.
			equalPoints(t, got, aggregate(checkout, tt.from, tt.to, tt.wantStep))
		})
	}

	// A late sample in a rolled-up minute inside the redo window is picked
	// up by the next rollup.
	late := brownout.Sample{Service: "checkout", At: ts(17*time.Minute + 500*time.Millisecond), CPUPercent: 100, Instances: 50}
	mustWrite(t, db, []brownout.Sample{late})
	if err := db.Rollup(ctx, ts(19*time.Minute)); err != nil {
		t.Fatal(err)
	}
	var maxInst int
	if err := db.read.QueryRow(`SELECT max_instances FROM sample_rollups WHERE minute = ?`, ts(17*time.Minute).UnixNano()).Scan(&maxInst); err != nil {
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
		mustWrite(t, db, genSamples(s, ts(0), time.Second, 1000))
	}
	if err := db.Rollup(ctx, ts(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var batches int
	db.SetObserver(func(op string, _ time.Duration) {
		if op == "prune" {
			batches++
		}
	})
	// Raw older than ts(700s) goes (700 per series), rollups older than
	// ts(5m) go (5 per series).
	n, err := db.Prune(ctx, ts(1000*time.Second), 300*time.Second, 1000*time.Second-5*time.Minute, 64)
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
	if raw != 3*300 || oldest != ts(700*time.Second).UnixNano() {
		t.Fatalf("left %d raw rows from %v, want 900 from %v", raw, time.Unix(0, oldest).UTC(), ts(700*time.Second))
	}
	if err := db.read.QueryRow(`SELECT count(*) FROM sample_rollups`).Scan(&rollups); err != nil {
		t.Fatal(err)
	}
	if rollups != 3*(17-5) {
		t.Fatalf("left %d rollups, want %d", rollups, 3*12)
	}
	// Nothing left to prune.
	if n, err := db.Prune(ctx, ts(1000*time.Second), 300*time.Second, 1000*time.Second-5*time.Minute, 64); err != nil || n != 0 {
		t.Fatalf("second prune: deleted %d, %v", n, err)
	}
}

// TestFreshStoreStaysRaw: on a fresh store the first minute's rollup
// covers the same samples as the raw ones, so a range that starts before
// the oldest raw sample must still be answered from raw samples at its
// own step, not fall back to per-minute rollups (which the dashboard drew
// as scattered dots for the first quarter of an hour).
func TestFreshStoreStaysRaw(t *testing.T) {
	t.Parallel()
	db := MustOpenDB(t)
	ctx := context.Background()
	first := ts(30 * time.Second) // mid-minute, as a first report is
	samples := genSamples("fresh", first, time.Second, 5*60)
	mustWrite(t, db, samples)
	if err := db.Rollup(ctx, ts(5*time.Minute+40*time.Second)); err != nil {
		t.Fatal(err)
	}
	from, to := ts(-10*time.Minute), ts(5*time.Minute+30*time.Second)
	got, err := db.QuerySamples(ctx, "fresh", from, to, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 60 {
		t.Fatalf("%d points for 5 minutes at a 5 s step; want 60 (fell back to rollups?)", len(got))
	}
	equalPoints(t, got, aggregate(samples, from, to, 5*time.Second))
}
