package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/storage/storagetest"

	"github.com/brownout-io/brownout"
)

// Benchmarks. The sample table is seeded with BROWNOUT_BENCH_ROWS rows
// (default 200000) spread over up to 100 services at one sample per second.
// To measure the design target, 10 million rows:
//
//	BROWNOUT_BENCH_ROWS=10000000 BROWNOUT_BENCH_DIR=/tmp/brownout-bench \
//	  go test -run '^$' -bench QuerySamplesHour -benchtime 2s ./internal/storage/
//
// BROWNOUT_BENCH_DIR keeps the seeded file between runs (seeding 10M rows
// takes about a minute); without it a temporary directory is used.

func benchRows(tb testing.TB) int {
	tb.Helper()
	v := os.Getenv("BROWNOUT_BENCH_ROWS")
	if v == "" {
		return 200_000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 7200 {
		tb.Fatalf("BROWNOUT_BENCH_ROWS=%q: want an integer >= 7200", v)
	}
	return n
}

// benchLayout returns how many services share rows so that each has at
// least two hours of samples.
func benchLayout(rows int) (services, perService int) {
	services = min(100, max(1, rows/7200))
	return services, rows / services
}

// openSeeded opens a database holding rows samples, seeding it if needed.
func openSeeded(b *testing.B, rows int) *DB {
	b.Helper()
	dir := os.Getenv("BROWNOUT_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("bench-%d.db", rows))
	db := mustOpenPath(b, path)
	var have int
	if err := db.read.QueryRow(`SELECT count(*) FROM series`).Scan(&have); err != nil {
		b.Fatal(err)
	}
	services, per := benchLayout(rows)
	if have != services {
		seed(b, db, services, per)
	}
	// As in production, every complete minute is rolled up.
	var mark int64
	_ = db.read.QueryRow(`SELECT value FROM meta WHERE key = ?`, metaRollupWatermark).Scan(&mark)
	if end := storagetest.TS(time.Duration(per) * time.Second); mark < end.UnixNano()-minute {
		start := time.Now()
		if err := db.Rollup(context.Background(), end); err != nil {
			b.Fatal(err)
		}
		b.Logf("rolled up %d rows in %s", services*per, time.Since(start).Round(time.Millisecond))
	}
	return db
}

func seed(b *testing.B, db *DB, services, per int) {
	b.Helper()
	start := time.Now()
	const batch = 10_000
	buf := make([]brownout.Sample, 0, batch)
	// Interleave services the way the controller writes them: one sample
	// per service per tick.
	for i := 0; i < per; i++ {
		for s := 0; s < services; s++ {
			buf = append(buf, brownout.Sample{
				Service: fmt.Sprintf("service-%03d", s), At: storagetest.TS(time.Duration(i) * time.Second),
				CPUPercent: float64(i % 100), MemoryPercent: 50, Requests: 100, Errors: float64(i % 3), Instances: 3,
			})
			if len(buf) == batch {
				if err := db.WriteSamples(context.Background(), buf); err != nil {
					b.Fatal(err)
				}
				buf = buf[:0]
			}
		}
	}
	if err := db.WriteSamples(context.Background(), buf); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d rows (%d services × %d) in %s", services*per, services, per, time.Since(start).Round(time.Millisecond))
}

// BenchmarkQuerySamplesHour queries one hour of one service, at a random
// service and offset each time.
func BenchmarkQuerySamplesHour(b *testing.B) {
	rows := benchRows(b)
	db := openSeeded(b, rows)
	services, per := benchLayout(rows)
	ctx := context.Background()
	for _, step := range []time.Duration{time.Second, 10 * time.Second, time.Minute} {
		b.Run("step="+step.String(), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			points := 0
			for b.Loop() {
				svc := fmt.Sprintf("service-%03d", r.IntN(services))
				from := storagetest.TS(time.Duration(r.IntN(per-3600)) * time.Second)
				got, err := db.QuerySamples(ctx, svc, from, from.Add(time.Hour), step)
				if err != nil {
					b.Fatal(err)
				}
				points += len(got)
			}
			b.ReportMetric(float64(points)/float64(b.N), "points/op")
		})
	}
}

// BenchmarkQuerySamplesHourParallel is the same query from several
// goroutines while the sample writer writes, to measure the read pool.
func BenchmarkQuerySamplesHourParallel(b *testing.B) {
	rows := benchRows(b)
	db := openSeeded(b, rows)
	services, per := benchLayout(rows)
	ctx := context.Background()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		at := storagetest.TS(time.Duration(per) * time.Second)
		for {
			select {
			case <-stop:
				return
			default:
			}
			batch := make([]brownout.Sample, 0, services)
			for s := range services {
				batch = append(batch, brownout.Sample{Service: fmt.Sprintf("service-%03d", s), At: at, Requests: 1})
			}
			if err := db.WriteSamples(ctx, batch); err != nil {
				b.Error(err)
				return
			}
			at = at.Add(time.Second)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 2))
		for pb.Next() {
			svc := fmt.Sprintf("service-%03d", r.IntN(services))
			from := storagetest.TS(time.Duration(r.IntN(per-3600)) * time.Second)
			if _, err := db.QuerySamples(ctx, svc, from, from.Add(time.Hour), 10*time.Second); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	close(stop)
	<-done
}

// BenchmarkWriteSamples writes batches of samples for 100 services, each
// batch one transaction (one fsync), as the SampleWriter does.
func BenchmarkWriteSamples(b *testing.B) {
	for _, size := range []int{1, 100, 1000, 10_000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			db := MustOpenDB(b)
			ctx := context.Background()
			batch := make([]brownout.Sample, size)
			tick := 0
			for b.Loop() {
				for i := range batch {
					batch[i] = brownout.Sample{
						Service: fmt.Sprintf("service-%03d", i%100), At: storagetest.TS(time.Duration(tick+i/100) * time.Second),
						CPUPercent: 42, MemoryPercent: 50, Requests: 100, Errors: 1, Instances: 3,
					}
				}
				tick += size/100 + 1
				if err := db.WriteSamples(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(size*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
