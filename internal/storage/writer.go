package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brownout-io/brownout"
)

// flushTimeout bounds one batch write, so that a stuck disk shows up as
// dropped samples rather than an ever-growing queue.
const flushTimeout = 30 * time.Second

// SampleWriter is the one goroutine that writes samples. Enqueue hands it a
// sample without blocking; it writes a batch every flushEvery, or as soon
// as maxBatch samples are waiting, in one transaction. A crash loses at
// most what is queued: about one flush interval of samples.
type SampleWriter struct {
	db         SampleStore
	log        *slog.Logger
	flushEvery time.Duration
	maxBatch   int

	in   chan brownout.Sample
	stop chan struct{}
	done chan struct{}

	// mu orders Enqueue against Close: after Close, nothing enters in.
	mu      sync.RWMutex
	closed  bool
	dropped atomic.Uint64
	lastErr error // the final flushes' error: written by the goroutine before done closes
}

// SampleStore is what a SampleWriter writes to.
type SampleStore interface {
	// WriteSamples stores batch in one transaction, all or nothing.
	WriteSamples(ctx context.Context, batch []brownout.Sample) error
}

// NewSampleWriter starts the writer goroutine. flushEvery ≤ 0 means one
// second, maxBatch ≤ 0 means 1000. The queue holds 4×maxBatch samples.
// Stop it with Close before closing db.
func NewSampleWriter(db SampleStore, flushEvery time.Duration, maxBatch int, log *slog.Logger) *SampleWriter {
	if flushEvery <= 0 {
		flushEvery = time.Second
	}
	if maxBatch <= 0 {
		maxBatch = 1000
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &SampleWriter{
		db:         db,
		log:        log,
		flushEvery: flushEvery,
		maxBatch:   maxBatch,
		in:         make(chan brownout.Sample, 4*maxBatch),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	go w.run()
	return w
}

// Enqueue queues s for the next batch. It never blocks: when the queue is
// full, the writer is closed or s cannot be stored (see WriteSamples), it
// drops s, counts it and returns false.
func (w *SampleWriter) Enqueue(s brownout.Sample) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if !w.closed && CheckSample(s) == nil {
		select {
		case w.in <- s:
			return true
		default:
		}
	}
	w.dropped.Add(1)
	return false
}

// Dropped returns how many samples were not stored: refused by Enqueue, or
// lost because their batch failed to write.
func (w *SampleWriter) Dropped() uint64 { return w.dropped.Load() }

// Close stops accepting samples, writes what is queued and stops the
// goroutine. ctx bounds the wait; the final write itself is bounded by its
// own timeout. It returns the error of the final write, if any. Calling it
// again returns nil.
func (w *SampleWriter) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	select {
	case <-w.done:
		return w.lastErr
	case <-ctx.Done():
		return fmt.Errorf("close sample writer: %w", ctx.Err())
	}
}

func (w *SampleWriter) run() {
	defer close(w.done)
	t := time.NewTicker(w.flushEvery)
	defer t.Stop()
	batch := make([]brownout.Sample, 0, w.maxBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		err := w.db.WriteSamples(ctx, batch)
		cancel()
		if err != nil {
			w.dropped.Add(uint64(len(batch)))
			w.log.Error("write samples", "samples", len(batch), "err", err)
		}
		batch = batch[:0]
		return err
	}
	for {
		select {
		case s := <-w.in:
			batch = append(batch, s)
			if len(batch) >= w.maxBatch {
				_ = flush() // logged and counted
			}
		case <-t.C:
			_ = flush()
		case <-w.stop:
			// Enqueue can no longer add: drain what is queued.
			var errs []error
			for {
				select {
				case s := <-w.in:
					batch = append(batch, s)
					if len(batch) >= w.maxBatch {
						errs = append(errs, flush())
					}
				default:
					errs = append(errs, flush())
					w.lastErr = errors.Join(errs...)
					return
				}
			}
		}
	}
}

// Retainer is what RunRetention enforces retention on.
type Retainer interface {
	Rollup(ctx context.Context, upTo time.Time) error
	Prune(ctx context.Context, now time.Time, raw, rollup time.Duration, batch int) (int, error)
}

// RunRetention runs Rollup and then Prune every interval (and once at
// start) until ctx ends: raw samples are kept for raw, per-minute rollups
// for rollup. Failures are logged and retried at the next interval.
func RunRetention(ctx context.Context, db Retainer, every, raw, rollup time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		now := time.Now()
		// Leave the current minute alone: its samples are still arriving.
		if err := db.Rollup(ctx, now.Add(-time.Minute)); err != nil && ctx.Err() == nil {
			log.Error("rollup samples", "err", err)
		} else if n, err := db.Prune(ctx, now, raw, rollup, DefaultPruneBatch); err != nil && ctx.Err() == nil {
			log.Error("prune samples", "err", err, "deleted", n)
		} else if n > 0 {
			log.Debug("pruned samples", "deleted", n, "took", time.Since(now))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
