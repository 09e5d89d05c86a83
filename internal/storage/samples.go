package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/brownout-io/brownout"
)

// Minute is a minute in nanoseconds, the unit of the sample rollups.
const Minute = int64(time.Minute)

// FoldInGoBelow is the step under which raw samples are folded into
// buckets in Go rather than grouped by the database. At about one sample
// per second, a small step means a sample or two per bucket, and then
// SQLite's GROUP BY (a sorter, then seven aggregates finalised per bucket)
// costs about twice as much as streaming the rows in key order; with
// several samples per bucket, GROUP BY wins (BenchmarkQuerySamplesHour).
const FoldInGoBelow = 5 * time.Second

// SampleRows is the part of QuerySamples that differs by SQL dialect: the
// reads of the series, samples and sample_rollups tables.
type SampleRows interface {
	// LookupSeries returns the series id of a service's samples; ok is
	// false when it has none.
	LookupSeries(ctx context.Context, service string) (id int64, ok bool, err error)
	// OldestRaw returns the time of the series' oldest raw sample (ok is
	// false when it has none) and the rollup watermark: rollups are
	// complete for the minutes before it (0 when none was stored).
	OldestRaw(ctx context.Context, id int64) (oldest int64, ok bool, mark int64, err error)
	// HasRollups reports whether the series has a rollup of a minute in
	// [lo, hi).
	HasRollups(ctx context.Context, id, lo, hi int64) (bool, error)
	// FoldRaw reads the raw samples of [lo, hi) in time order and folds
	// them into buckets of step, appending to parts with AppendPartial.
	FoldRaw(ctx context.Context, parts []SamplePartial, step, id, lo, hi int64) ([]SamplePartial, error)
	// GroupPartials has the database group the raw samples (or, with
	// rollup, the rollups) of [lo, hi) into buckets of step, appended to
	// parts with AppendPartial.
	GroupPartials(ctx context.Context, parts []SamplePartial, rollup bool, step, id, lo, hi int64) ([]SamplePartial, error)
}

// SamplePartial is one bucket's sums: raw samples and rollups answer in
// the same shape, so that a bucket fed by both merges exactly.
type SamplePartial struct {
	B                       int64 // the bucket's start, Unix nanoseconds
	N, CPU, Mem, Errs, Reqs float64
	Instances               int
}

func (p SamplePartial) point() brownout.SamplePoint {
	sp := brownout.SamplePoint{At: time.Unix(0, p.B).UTC(), Instances: p.Instances}
	if p.N > 0 {
		sp.CPUPercent, sp.MemoryPercent = p.CPU/p.N, p.Mem/p.N
	}
	if p.Reqs > 0 {
		sp.ErrorRate = p.Errs / p.Reqs
	}
	return sp
}

// AppendPartial appends p to parts, or merges it into the last bucket when
// p belongs to it. Callers append in time order.
func AppendPartial(parts []SamplePartial, p SamplePartial) []SamplePartial {
	k := len(parts) - 1
	if k < 0 || parts[k].B != p.B {
		return append(parts, p)
	}
	last := &parts[k]
	last.N += p.N
	last.CPU += p.CPU
	last.Mem += p.Mem
	last.Errs += p.Errs
	last.Reqs += p.Reqs
	last.Instances = max(last.Instances, p.Instances)
	return parts
}

// QuerySamples aggregates service's samples in [from, to) into buckets of
// step aligned to step since the Unix epoch (so the first bucket may start
// before from). Each point holds the mean CPU and memory, the error rate
// Σerrors/Σrequests (0 when there were no requests) and the most instances
// seen. Buckets without samples are left out.
//
// Where raw samples have been pruned, the older part of the range is read
// from the per-minute rollups: step is then rounded up to a whole number of
// minutes for the whole answer and that part is widened to whole minutes.
// When step is a whole number of minutes anyway, whole minutes already
// rolled up are read from the rollups too (60 rows an hour instead of
// 3,600); the answer is the same, since rollups keep exact sums, except
// for a sample written into a minute after that minute was rolled up and
// left the rollup's redo window. Times before 1970 are not supported.
//
// Cost: a step of whole minutes reads one rollup row per minute; any other
// step reads every raw sample in range (one per second per service). On
// 10 million stored samples, one day at a 5m step takes about 5 ms, at a
// 4m48s step about 270 ms, so callers that choose a default step should
// choose whole minutes.
// More than MaxPoints buckets, a step that is not positive or a range that
// is empty is EBADREQUEST naming the parameter.
func QuerySamples(ctx context.Context, rows SampleRows, service string, from, to time.Time, step time.Duration) ([]brownout.SamplePoint, error) {
	if step <= 0 {
		return nil, brownout.FieldErrorf(brownout.EBADREQUEST, "step", "must be positive")
	}
	if !to.After(from) {
		return nil, brownout.FieldErrorf(brownout.EBADREQUEST, "to", "must be after from")
	}
	lo, hi := from.UnixNano(), to.UnixNano()
	if n := buckets(lo, hi, int64(step)); n > MaxPoints {
		return nil, brownout.FieldErrorf(brownout.EBADREQUEST, "step",
			"%s over %s gives %d points, more than %d; use a larger step", step, to.Sub(from), n, MaxPoints)
	}
	id, ok, err := rows.LookupSeries(ctx, service)
	if err != nil {
		return nil, fmt.Errorf("query samples: %w", err)
	}
	if !ok {
		return []brownout.SamplePoint{}, nil
	}
	plan, err := planQuery(ctx, rows, id, lo, hi, int64(step))
	if err != nil {
		return nil, fmt.Errorf("query samples: %w", err)
	}
	var parts []SamplePartial
	for _, seg := range plan.segments {
		switch {
		case seg.rollup:
			parts, err = rows.GroupPartials(ctx, parts, true, plan.step, id, seg.lo, seg.hi)
		case plan.step < int64(FoldInGoBelow):
			parts, err = rows.FoldRaw(ctx, parts, plan.step, id, seg.lo, seg.hi)
		default:
			parts, err = rows.GroupPartials(ctx, parts, false, plan.step, id, seg.lo, seg.hi)
		}
		if err != nil {
			return nil, fmt.Errorf("query samples: %w", err)
		}
	}
	out := make([]brownout.SamplePoint, len(parts))
	for i, p := range parts {
		out[i] = p.point()
	}
	return out, nil
}

type segment struct {
	lo, hi int64
	rollup bool
}

type queryPlan struct {
	step     int64
	segments []segment // in time order
}

// planQuery splits [lo, hi) into raw and rollup segments and picks the
// step the answer is computed at.
func planQuery(ctx context.Context, rows SampleRows, id, lo, hi, step int64) (queryPlan, error) {
	// Raw samples are pruned oldest first, so raw data is complete from the
	// oldest one on; before it, only rollups can answer.
	oldestRaw, hasRaw, mark, err := rows.OldestRaw(ctx, id)
	if err != nil {
		return queryPlan{}, err
	}
	oldest := hi
	if hasRaw {
		oldest = oldestRaw
	}
	oldest = min(oldest, hi)

	raw := []segment{{lo: lo, hi: hi}}
	rlo := CeilDiv(lo, Minute) * Minute // rollups only for whole minutes in range…
	if lo < oldest {
		// Only a rollup of a minute wholly before the oldest raw sample's
		// minute proves that raw samples were pruned: on a fresh store the
		// first minute's rollup holds the same samples as raw does.
		pruned, err := rows.HasRollups(ctx, id, FloorDiv(lo, Minute)*Minute, FloorDiv(oldest, Minute)*Minute)
		if err != nil {
			return queryPlan{}, err
		}
		if pruned {
			step = CeilDiv(step, Minute) * Minute
			rlo = FloorDiv(lo, Minute) * Minute // …unless raw is gone there.
			mark = max(mark, oldest)
		}
	}
	if step%Minute != 0 {
		return queryPlan{step: step, segments: raw}, nil
	}
	rhi := min(FloorDiv(hi, Minute)*Minute, FloorDiv(mark, Minute)*Minute)
	if rlo >= rhi {
		return queryPlan{step: step, segments: raw}, nil
	}
	var segs []segment
	if lo < rlo {
		segs = append(segs, segment{lo: lo, hi: rlo})
	}
	segs = append(segs, segment{lo: rlo, hi: rhi, rollup: true})
	if rhi < hi {
		segs = append(segs, segment{lo: rhi, hi: hi})
	}
	return queryPlan{step: step, segments: segs}, nil
}

// buckets counts the step-aligned buckets that [lo, hi) touches.
func buckets(lo, hi, step int64) int64 {
	return FloorDiv(hi-1, step) - FloorDiv(lo, step) + 1
}

// FloorDiv is a / b rounded towards minus infinity.
func FloorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// CeilDiv is a / b rounded towards plus infinity.
func CeilDiv(a, b int64) int64 { return -FloorDiv(-a, b) }
