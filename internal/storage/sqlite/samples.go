package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

// rollupRedo is how far before the rollup watermark Rollup aggregates
// again, so that samples flushed late still reach their minute.
const rollupRedo = 5 * time.Minute

const metaRollupWatermark = "rollup_watermark"

// WriteSamples stores batch in one transaction. A sample for a service and
// instant already stored replaces it. A sample with an invalid service name
// or a time outside 1678–2261 fails the whole batch with EBADREQUEST before
// anything is written. Use it through a SampleWriter, which
// batches; one call per sample would pay one fsync per sample.
func (db *DB) WriteSamples(ctx context.Context, batch []brownout.Sample) error {
	if len(batch) == 0 {
		return nil
	}
	for i, s := range batch {
		if err := storage.CheckSample(s); err != nil {
			return fmt.Errorf("write samples: sample %d: %w", i, err)
		}
	}
	fresh := map[string]int64{}
	err := db.inTx(ctx, "write_samples", func(tx *wtx) error {
		stmt, err := tx.PrepareContext(ctx,
			`INSERT OR REPLACE INTO samples (series_id, at, cpu, memory, error_rate, requests, errors, instances)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, s := range batch {
			id, err := db.seriesInTx(ctx, tx, s.Service, fresh)
			if err != nil {
				return err
			}
			if _, err := stmt.ExecContext(ctx, id, s.At.UnixNano(), s.CPUPercent, s.MemoryPercent, s.ErrorRate,
				s.Requests, s.Errors, s.Instances); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Only ids of a committed transaction may enter the cache.
	if len(fresh) > 0 {
		db.seriesMu.Lock()
		for name, id := range fresh {
			db.series[name] = id
		}
		db.seriesMu.Unlock()
	}
	return nil
}

func (db *DB) cachedSeries(name string) (int64, bool) {
	db.seriesMu.RLock()
	defer db.seriesMu.RUnlock()
	id, ok := db.series[name]
	return id, ok
}

// seriesInTx returns the series id of name, creating it within tx if
// needed; ids created here are recorded in fresh.
func (db *DB) seriesInTx(ctx context.Context, tx *wtx, name string, fresh map[string]int64) (int64, error) {
	if id, ok := db.cachedSeries(name); ok {
		return id, nil
	}
	if id, ok := fresh[name]; ok {
		return id, nil
	}
	var id int64
	err := tx.QueryRowContext(ctx,
		`INSERT INTO series (name) VALUES (?) ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id`,
		name).Scan(&id)
	if err != nil {
		return 0, err
	}
	fresh[name] = id
	return id, nil
}

// lookupSeries returns the series id of name; ok is false when the service
// has never had a sample.
func (db *DB) lookupSeries(ctx context.Context, name string) (int64, bool, error) {
	if id, ok := db.cachedSeries(name); ok {
		return id, true, nil
	}
	var id int64
	err := db.read.QueryRowContext(ctx, `SELECT id FROM series WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	db.seriesMu.Lock()
	db.series[name] = id
	db.seriesMu.Unlock()
	return id, true, nil
}

// QuerySamples aggregates service's samples in [from, to) into buckets of
// step; see storage.QuerySamples.
func (db *DB) QuerySamples(ctx context.Context, service string, from, to time.Time, step time.Duration) ([]brownout.SamplePoint, error) {
	return storage.QuerySamples(ctx, sampleRows{db}, service, from, to, step)
}

const minute = storage.Minute

// Partial aggregates per bucket: raw samples and rollups answer in the same
// shape, so that a bucket fed by both merges exactly.
const (
	qRaw = `SELECT (at / ?) * ? AS b, count(*), total(cpu), total(memory), total(errors), total(requests), max(instances)
		FROM samples WHERE series_id = ? AND at >= ? AND at < ?
		GROUP BY b ORDER BY b`
	qRollup = `SELECT (minute / ?) * ? AS b, total(n), total(cpu_sum), total(memory_sum), total(errors), total(requests), max(max_instances)
		FROM sample_rollups WHERE series_id = ? AND minute >= ? AND minute < ?
		GROUP BY b ORDER BY b`
)

// sampleRows are the sample tables' reads in SQLite, for
// storage.QuerySamples.
type sampleRows struct{ db *DB }

var _ storage.SampleRows = sampleRows{}

func (r sampleRows) LookupSeries(ctx context.Context, name string) (int64, bool, error) {
	return r.db.lookupSeries(ctx, name)
}

func (r sampleRows) OldestRaw(ctx context.Context, id int64) (int64, bool, int64, error) {
	var oldest, mark sql.NullInt64
	err := r.db.read.QueryRowContext(ctx,
		`SELECT (SELECT at FROM samples WHERE series_id = ? ORDER BY at LIMIT 1),
		        (SELECT value FROM meta WHERE key = ?)`, id, metaRollupWatermark).Scan(&oldest, &mark)
	if err != nil {
		return 0, false, 0, err
	}
	return oldest.Int64, oldest.Valid, mark.Int64, nil
}

func (r sampleRows) HasRollups(ctx context.Context, id, lo, hi int64) (bool, error) {
	var one int
	err := r.db.read.QueryRowContext(ctx,
		`SELECT 1 FROM sample_rollups WHERE series_id = ? AND minute >= ? AND minute < ? LIMIT 1`, id, lo, hi).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

func (r sampleRows) FoldRaw(ctx context.Context, parts []storage.SamplePartial, step, id, lo, hi int64) ([]storage.SamplePartial, error) {
	rows, err := r.db.read.QueryContext(ctx,
		`SELECT at, cpu, memory, errors, requests, instances FROM samples
		 WHERE series_id = ? AND at >= ? AND at < ? ORDER BY at`, id, lo, hi)
	if err != nil {
		return parts, err
	}
	defer rows.Close()
	for rows.Next() {
		var at int64
		p := storage.SamplePartial{N: 1}
		if err := rows.Scan(&at, &p.CPU, &p.Mem, &p.Errs, &p.Reqs, &p.Instances); err != nil {
			return parts, err
		}
		p.B = storage.FloorDiv(at, step) * step
		parts = storage.AppendPartial(parts, p)
	}
	return parts, rows.Err()
}

func (r sampleRows) GroupPartials(ctx context.Context, parts []storage.SamplePartial, rollup bool, step, id, lo, hi int64) ([]storage.SamplePartial, error) {
	q := qRaw
	if rollup {
		q = qRollup
	}
	rows, err := r.db.read.QueryContext(ctx, q, step, step, id, lo, hi)
	if err != nil {
		return parts, err
	}
	defer rows.Close()
	for rows.Next() {
		var p storage.SamplePartial
		if err := rows.Scan(&p.B, &p.N, &p.CPU, &p.Mem, &p.Errs, &p.Reqs, &p.Instances); err != nil {
			return parts, err
		}
		parts = storage.AppendPartial(parts, p)
	}
	return parts, rows.Err()
}

// Rollup aggregates raw samples of the complete minutes before upTo into
// the per-minute rollups. It is idempotent: a minute rolled up again is
// replaced. It resumes from a stored watermark (minus a few minutes, so
// that late samples still count) and works one series and one hour per
// transaction, so that it never holds the write lock for long.
func (db *DB) Rollup(ctx context.Context, upTo time.Time) error {
	end := storage.FloorDiv(upTo.UnixNano(), minute) * minute
	var mark int64
	err := db.read.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, metaRollupWatermark).Scan(&mark)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("rollup: %w", err)
	}
	start := int64(0)
	if mark > 0 {
		start = mark - int64(rollupRedo)
	}
	ids, err := db.seriesIDs(ctx)
	if err != nil {
		return fmt.Errorf("rollup: %w", err)
	}
	for _, id := range ids {
		var first int64
		err := db.read.QueryRowContext(ctx,
			`SELECT at FROM samples WHERE series_id = ? AND at >= ? ORDER BY at LIMIT 1`, id, start).Scan(&first)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("rollup: %w", err)
		}
		from := storage.FloorDiv(first, minute) * minute
		for lo := from; lo < end; lo += int64(time.Hour) {
			hi := min(lo+int64(time.Hour), end)
			err := db.inTx(ctx, "rollup", func(tx *wtx) error {
				_, err := tx.ExecContext(ctx,
					`INSERT INTO sample_rollups (series_id, minute, n, cpu_sum, memory_sum, requests, errors, max_instances)
					 SELECT series_id, (at / ?) * ? AS m, count(*), sum(cpu), sum(memory), sum(requests), sum(errors), max(instances)
					 FROM samples WHERE series_id = ? AND at >= ? AND at < ?
					 GROUP BY m
					 ON CONFLICT (series_id, minute) DO UPDATE SET
					   n = excluded.n, cpu_sum = excluded.cpu_sum, memory_sum = excluded.memory_sum,
					   requests = excluded.requests, errors = excluded.errors, max_instances = excluded.max_instances`,
					minute, minute, id, lo, hi)
				return err
			})
			if err != nil {
				return err
			}
		}
	}
	if end > mark {
		err := db.inTx(ctx, "rollup", func(tx *wtx) error {
			_, err := tx.ExecContext(ctx,
				`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
				metaRollupWatermark, end)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) seriesIDs(ctx context.Context) ([]int64, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT id FROM series ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// Prune deletes raw samples older than now-raw and rollups older than
// now-rollup, at most batch rows per transaction (DefaultPruneBatch when
// batch ≤ 0), so that the sample writer and config writes wait at most one
// small batch. A non-positive raw or rollup keeps that table whole. It
// returns how many rows it deleted. Run Rollup first (RunRetention does), or
// pruned raw samples will be missing from the rollups.
func (db *DB) Prune(ctx context.Context, now time.Time, raw, rollup time.Duration, batch int) (int, error) {
	if batch <= 0 {
		batch = storage.DefaultPruneBatch
	}
	ids, err := db.seriesIDs(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	total := 0
	for _, id := range ids {
		if raw > 0 {
			n, err := db.pruneSeries(ctx, "samples", "at", id, now.Add(-raw).UnixNano(), batch)
			total += n
			if err != nil {
				return total, err
			}
		}
		if rollup > 0 {
			n, err := db.pruneSeries(ctx, "sample_rollups", "minute", id, now.Add(-rollup).UnixNano(), batch)
			total += n
			if err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

// pruneSeries deletes rows of one series with col < cutoff, batch by batch.
// Each batch deletes the oldest rows up to the batch-th one, which the
// primary key (series_id, col) finds without a scan.
func (db *DB) pruneSeries(ctx context.Context, table, col string, id, cutoff int64, batch int) (int, error) {
	q := `DELETE FROM ` + table + ` WHERE series_id = ? AND ` + col + ` < ? AND ` + col + ` <= coalesce(
		(SELECT ` + col + ` FROM ` + table + ` WHERE series_id = ? AND ` + col + ` < ? ORDER BY ` + col + ` LIMIT 1 OFFSET ?), ?)`
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var n int64
		err := db.inTx(ctx, "prune", func(tx *wtx) error {
			res, err := tx.ExecContext(ctx, q, id, cutoff, id, cutoff, batch-1, cutoff)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		total += int(n)
		if err != nil {
			return total, err
		}
		if n < int64(batch) {
			return total, nil
		}
	}
}
