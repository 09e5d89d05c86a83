// Package clock provides the monotonic time sources used by the resilience
// primitives: a precise one, a coarse one that is cheap enough for per-call
// hot paths, and a manual one for tests.
//
// Every reading is a count of nanoseconds since a process-local epoch taken
// when the package was initialised. Readings come from the monotonic clock
// only, so wall-clock steps (NTP, manual changes, leap seconds) never move
// them.
package clock

import (
	"sync/atomic"
	"time"
)

// Clock is a monotonic time source. Nanotime returns nanoseconds since an
// arbitrary fixed epoch; successive readings from one goroutine never
// decrease. Implementations must be safe for concurrent use.
type Clock interface {
	Nanotime() int64
}

// epoch is the process-local origin of all readings. It carries a monotonic
// reading, so time.Since(epoch) never consults the wall clock.
var epoch = time.Now()

// Epoch returns the time.Time that corresponds to reading 0. Epoch().Add(d)
// converts a reading into a time.Time that keeps its monotonic component.
func Epoch() time.Time { return epoch }

// Time converts a reading into a time.Time (with a monotonic component).
func Time(ns int64) time.Time { return epoch.Add(time.Duration(ns)) }

// Reading converts a time.Time into a reading. For a t with a monotonic
// component the conversion uses the monotonic clock only.
func Reading(t time.Time) int64 { return int64(t.Sub(epoch)) }

// Nanotime returns a precise reading of the monotonic clock.
func Nanotime() int64 { return int64(time.Since(epoch)) }

// Resolution is the period at which the coarse clock is refreshed.
const Resolution = time.Millisecond

// idleTicks is how many refreshes without a reader stop the refresher.
const idleTicks = 1000

type pad [56]byte

// Flags of coarse.flags.
const (
	running = 1 // a refresher goroutine is publishing
	used    = 2 // a reader came since the last refresh
)

var coarse struct {
	now   atomic.Int64 // last published reading
	_     pad
	flags atomic.Uint32
	_     pad
}

// Coarse returns a reading that lags the precise clock by at most about
// Resolution (more if the refresher goroutine is starved of CPU). It costs
// two atomic loads, against tens of nanoseconds for a precise reading.
//
// A background goroutine publishes the reading; it starts on first use and
// stops by itself after about a second without readers, so an idle process
// does not wake up. Because the value may lag, code that mixes coarse and
// precise readings must tolerate readings that go backwards; every primitive
// in this SDK does, erring towards refusing rather than granting.
func Coarse() int64 {
	// Small enough to be inlined.
	if coarse.flags.Load() == running|used {
		return coarse.now.Load()
	}
	return coarseSlow()
}

// coarseSlow marks the clock used and starts the refresher if it is not
// running.
func coarseSlow() int64 {
	if coarse.flags.Or(used)&running != 0 {
		return coarse.now.Load()
	}
	now := Nanotime()
	publish(now)
	for {
		f := coarse.flags.Load()
		if f&running != 0 {
			return now
		}
		if coarse.flags.CompareAndSwap(f, f|running|used) {
			go refresh()
			return now
		}
	}
}

// publish stores now unless a later reading is already published.
func publish(now int64) {
	for {
		old := coarse.now.Load()
		if old >= now || coarse.now.CompareAndSwap(old, now) {
			return
		}
	}
}

func refresh() {
	t := time.NewTicker(Resolution)
	defer t.Stop()
	idle := 0
	for range t.C {
		publish(Nanotime())
		if coarse.flags.And(^uint32(used))&used != 0 {
			idle = 0
			continue
		}
		if idle++; idle >= idleTicks {
			// Stop unless a reader came since the And above; a reader that
			// comes after this finds running unset and restarts it.
			if coarse.flags.CompareAndSwap(running, 0) {
				return
			}
			idle = 0
		}
	}
}

// Precise is a Clock backed by Nanotime.
type Precise struct{}

// Nanotime implements Clock.
func (Precise) Nanotime() int64 { return Nanotime() }

// CoarseClock is a Clock backed by Coarse.
type CoarseClock struct{}

// Nanotime implements Clock.
func (CoarseClock) Nanotime() int64 { return Coarse() }

// Manual is a Clock that only moves when told to. The zero value reads 0.
// It is safe for concurrent use.
type Manual struct{ ns atomic.Int64 }

// NewManual returns a Manual clock that reads start.
func NewManual(start time.Duration) *Manual {
	m := &Manual{}
	m.ns.Store(int64(start))
	return m
}

// Nanotime implements Clock.
func (m *Manual) Nanotime() int64 { return m.ns.Load() }

// Advance moves the clock forward (or backward, for a negative d, to model a
// stale reading) and returns the new reading.
func (m *Manual) Advance(d time.Duration) int64 { return m.ns.Add(int64(d)) }

// Set sets the reading.
func (m *Manual) Set(ns int64) { m.ns.Store(ns) }
