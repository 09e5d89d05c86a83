package storagetest

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
func GenSamples(service string, start time.Time, every time.Duration, n int) []brownout.Sample {
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
func Aggregate(samples []brownout.Sample, from, to time.Time, step time.Duration) []brownout.SamplePoint {
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

func EqualPoints(tb testing.TB, got, want []brownout.SamplePoint) {
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

func MustWrite(tb testing.TB, db storage.Store, samples []brownout.Sample) {
	tb.Helper()
	for len(samples) > 0 {
		n := min(len(samples), 5000)
		if err := db.WriteSamples(context.Background(), samples[:n]); err != nil {
			tb.Fatal(err)
		}
		samples = samples[n:]
	}
}

func testQuerySamplesRaw(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	checkout := GenSamples("checkout", TS(0), time.Second, 600)
	MustWrite(t, db, checkout)
	MustWrite(t, db, GenSamples("search", TS(0), time.Second, 600))

	tests := []struct {
		name     string
		from, to time.Time
		step     time.Duration
	}{
		{"1m steps", TS(0), TS(10 * time.Minute), time.Minute},
		{"1s steps", TS(0), TS(10 * time.Minute), time.Second},
		{"small step folded in Go", TS(0), TS(10 * time.Minute), 3 * time.Second},
		{"small step from inside a bucket", TS(time.Second), TS(5*time.Minute + 500*time.Millisecond), 4 * time.Second},
		{"sub-second step", TS(0), TS(time.Minute), 250 * time.Millisecond},
		{"odd step aligned to the epoch", TS(0), TS(10 * time.Minute), 7 * time.Second},
		{"from inside a bucket", TS(90 * time.Second), TS(5 * time.Minute), time.Minute},
		{"range beyond the data", TS(-time.Hour), TS(time.Hour), 15 * time.Minute},
		{"range before the data", TS(-time.Hour), TS(-time.Minute), time.Minute},
		{"one bucket", TS(0), TS(10 * time.Minute), time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.QuerySamples(ctx, "checkout", tt.from, tt.to, tt.step)
			if err != nil {
				t.Fatal(err)
			}
			EqualPoints(t, got, Aggregate(checkout, tt.from, tt.to, tt.step))
			if got == nil {
				t.Fatal("got nil, want an empty slice")
			}
		})
	}

	// Bucket starts are aligned to step since the epoch.
	got, _ := db.QuerySamples(ctx, "checkout", TS(0), TS(time.Minute), 7*time.Second)
	for _, p := range got {
		if p.At.UnixNano()%int64(7*time.Second) != 0 {
			t.Fatalf("bucket %v not aligned to 7s since the epoch", p.At)
		}
	}
	if got, err := db.QuerySamples(ctx, "nope", TS(0), TS(time.Hour), time.Minute); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("unknown service: got %v, %v; want empty", got, err)
	}
}

func testQuerySamplesWeighting(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	MustWrite(t, db, []brownout.Sample{
		{Service: "api", At: TS(0), CPUPercent: 10, MemoryPercent: 40, Requests: 100, Errors: 10, ErrorRate: 0.1, Instances: 2},
		{Service: "api", At: TS(time.Second), CPUPercent: 30, MemoryPercent: 60, Requests: 900, Errors: 0, ErrorRate: 0, Instances: 5},
		{Service: "api", At: TS(2 * time.Second), CPUPercent: 50, MemoryPercent: 80, Requests: 0, Errors: 0, ErrorRate: 0, Instances: 3},
		// A quiet minute: no requests at all.
		{Service: "api", At: TS(time.Minute), CPUPercent: 1, MemoryPercent: 2, Requests: 0, Errors: 0, Instances: 1},
	})
	got, err := db.QuerySamples(ctx, "api", TS(0), TS(2*time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := []brownout.SamplePoint{
		// Σerrors/Σrequests = 10/1000, not the mean of rates (0.033…).
		{At: TS(0), CPUPercent: 30, MemoryPercent: 60, ErrorRate: 0.01, Instances: 5},
		{At: TS(time.Minute), CPUPercent: 1, MemoryPercent: 2, ErrorRate: 0, Instances: 1},
	}
	EqualPoints(t, got, want)

	// A later write for the same instant replaces the sample.
	MustWrite(t, db, []brownout.Sample{{Service: "api", At: TS(time.Minute), CPUPercent: 9, MemoryPercent: 9, Instances: 9}})
	got, _ = db.QuerySamples(ctx, "api", TS(time.Minute), TS(2*time.Minute), time.Minute)
	EqualPoints(t, got, []brownout.SamplePoint{{At: TS(time.Minute), CPUPercent: 9, MemoryPercent: 9, Instances: 9}})
}

func testQuerySamplesBadRequest(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	tests := []struct {
		name     string
		from, to time.Time
		step     time.Duration
		field    string
	}{
		{"zero step", TS(0), TS(time.Hour), 0, "step"},
		{"negative step", TS(0), TS(time.Hour), -time.Second, "step"},
		{"empty range", TS(0), TS(0), time.Second, "to"},
		{"reversed range", TS(time.Hour), TS(0), time.Second, "to"},
		{"too many points", TS(0), TS(storage.MaxPoints*time.Second + time.Second), time.Second, "step"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.QuerySamples(ctx, "checkout", tt.from, tt.to, tt.step)
			WantCode(t, err, brownout.EBADREQUEST)
			if e := err.(*brownout.Error); e.Field != tt.field {
				t.Fatalf("got field %q, want %q", e.Field, tt.field)
			}
		})
	}
	// Exactly MaxPoints is fine.
	if _, err := db.QuerySamples(ctx, "checkout", TS(0), TS(storage.MaxPoints*time.Second), time.Second); err != nil {
		t.Fatal(err)
	}
}

// testFreshStoreStaysRaw: on a fresh store the first minute's rollup
// covers the same samples as the raw ones, so a range that starts before
// the oldest raw sample must still be answered from raw samples at its
// own step, not fall back to per-minute rollups (which the dashboard drew
// as scattered dots for the first quarter of an hour).
func testFreshStoreStaysRaw(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	first := TS(30 * time.Second) // mid-minute, as a first report is
	samples := GenSamples("fresh", first, time.Second, 5*60)
	MustWrite(t, db, samples)
	if err := db.Rollup(ctx, TS(5*time.Minute+40*time.Second)); err != nil {
		t.Fatal(err)
	}
	from, to := TS(-10*time.Minute), TS(5*time.Minute+30*time.Second)
	got, err := db.QuerySamples(ctx, "fresh", from, to, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 60 {
		t.Fatalf("%d points for 5 minutes at a 5 s step; want 60 (fell back to rollups?)", len(got))
	}
	EqualPoints(t, got, Aggregate(samples, from, to, 5*time.Second))
}
