// Package breaker implements a circuit breaker: it watches the outcomes of
// calls to a dependency and, when too many fail or are slow, stops calls for
// a while (open), then lets a few probes through (half-open) to decide
// whether to resume (closed) or wait again (open).
//
// # Windows
//
// Outcomes are counted in a sliding window:
//
//   - CountWindow keeps exactly the last WindowSize outcomes, one slot per
//     call in a ring: a call's outcome replaces the one WindowSize calls
//     before it. (Exact for calls reported one after another; two calls
//     WindowSize apart that finish at the same instant may race for their
//     slot.)
//   - TimeWindow keeps the calls of the last WindowDuration in Buckets
//     buckets of WindowDuration/Buckets each; the oldest bucket leaves the
//     window whole, so it covers between WindowDuration-WindowDuration/Buckets
//     and WindowDuration.
//
// The breaker opens when, with at least MinimumCalls calls in the window,
// the failure rate reaches FailureRateThreshold or the slow-call rate
// (calls that took at least SlowCallDuration) reaches SlowCallRateThreshold.
// MinimumCalls is at most WindowSize for a count window (a larger value
// could never be reached and is lowered to WindowSize).
//
// Independently, ConsecutiveFailures opens the breaker after that many
// failures in a row, whatever the window says: the seed's (and gobreaker's)
// policy.
//
// # Defaults
//
// A zero Config is a count window of 100 calls, MinimumCalls 10, failure
// rate 50%, open 5 s, 1 probe — Resilience4j's shape. The seed's breaker was
// "open after 5 consecutive failures, stay open 60 s"; SeedConfig returns
// exactly that.
//
// # States
//
// After OpenDuration an open breaker turns half-open on the next call. A
// half-open breaker admits exactly HalfOpenProbes calls; the first failed or
// slow probe reopens it, and when all probes succeed it closes. If the
// probes have not all finished within HalfOpenTimeout (a probe hung or its
// token was dropped), the next call reopens it, so it cannot stick in
// half-open. Operators can pin the breaker with ForceOpen, ForceClosed or
// Disable, and undo that with Reset.
//
// # Calls
//
// Allow returns a Token (a small value; the success path allocates nothing)
// whose Done method reports the outcome; Execute wraps both. Rejections
// return the sentinel errors ErrOpen and ErrTooManyProbes.
//
// The hot path (Allow and Done in the closed state) is lock-free: a few
// atomic loads and one atomic add. State transitions are rare and take a
// mutex; state-change callbacks run after it is released, so a callback may
// call back into the breaker.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/brownout-io/brownout/sdk/component"
	"github.com/brownout-io/brownout/sdk/resilience/clock"
)

// ErrOpen is returned when the breaker is open (or forced open) and rejects
// the call without running it.
var ErrOpen = errors.New("breaker: circuit open")

// ErrTooManyProbes is returned when the breaker is half-open and all its
// probe slots are taken.
var ErrTooManyProbes = errors.New("breaker: too many probes in half-open state")

// State is a breaker state.
type State uint8

const (
	// Closed lets calls through and counts their outcomes.
	Closed State = iota
	// Open rejects calls with ErrOpen until OpenDuration has passed.
	Open
	// HalfOpen admits HalfOpenProbes probe calls to test the dependency.
	HalfOpen
	// ForcedOpen rejects every call until Reset (operator override).
	ForcedOpen
	// ForcedClosed lets every call through and keeps counting outcomes, but
	// never opens (operator override).
	ForcedClosed
	// Disabled lets every call through and counts nothing.
	Disabled
)

var stateNames = [...]string{"closed", "open", "half_open", "forced_open", "forced_closed", "disabled"}

// String returns the state's name as used in component reports: "closed",
// "open", "half_open", "forced_open", "forced_closed" or "disabled".
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", s)
}

// WindowType selects how the sliding window is measured.
type WindowType uint8

const (
	// CountWindow measures the last WindowSize calls.
	CountWindow WindowType = iota
	// TimeWindow measures the calls of the last WindowDuration.
	TimeWindow
)

// Event describes a state change.
type Event struct {
	Name     string
	From, To State
	// Seq increases with every transition of this breaker, so a consumer
	// that receives events from several goroutines can order them.
	Seq uint64
}

// Config configures a Breaker. Zero fields take the documented defaults.
type Config struct {
	// Name identifies the breaker in events.
	Name string
	// Window selects a count-based (default) or time-based window.
	Window WindowType
	// WindowSize is the number of calls a CountWindow covers (one 4-byte
	// slot each). Default 100, at most 1<<24.
	WindowSize int
	// WindowDuration is the span a TimeWindow covers. Default 10s.
	WindowDuration time.Duration
	// Buckets is the number of buckets in the window ring. Default 10,
	// capped at WindowSize for a CountWindow.
	Buckets int
	// FailureRateThreshold in (0, 1] opens the breaker. Default 0.5.
	FailureRateThreshold float64
	// SlowCallDuration makes calls at least this long count as slow. Zero
	// disables slow-call tracking (and saves the clock readings).
	SlowCallDuration time.Duration
	// SlowCallRateThreshold in (0, 1] opens the breaker on slow calls.
	// Default 1 (all calls in the window slow).
	SlowCallRateThreshold float64
	// MinimumCalls is the number of calls the window must hold before any
	// rate is judged. Default 10.
	MinimumCalls int
	// ConsecutiveFailures, when positive, opens the breaker after that many
	// failures in a row (successes reset the run; ignored errors do not
	// count either way), in addition to the rate thresholds. Zero (the
	// default) disables it.
	ConsecutiveFailures int
	// OpenDuration is how long the breaker stays open. Default 5s.
	OpenDuration time.Duration
	// HalfOpenProbes is the number of calls admitted while half-open.
	// Default 1, at most 65535.
	HalfOpenProbes int
	// HalfOpenTimeout reopens a half-open breaker whose probes have not all
	// finished in time. Default: OpenDuration.
	HalfOpenTimeout time.Duration
	// IsFailure decides which non-nil errors count as failures; the others
	// count as successes. Default: all of them.
	IsFailure func(error) bool
	// IsIgnored decides which non-nil errors are not counted at all (and
	// give a half-open probe slot back). Default: errors matching
	// context.Canceled, since the caller gave up and the dependency is not
	// to blame.
	IsIgnored func(error) bool
	// OnStateChange is called after every transition, on the goroutine
	// that caused it, with no lock held. It may call the breaker. Events
	// caused by different goroutines may arrive out of order; use Seq.
	OnStateChange func(Event)
	// Clock is the time source. Default: the coarse monotonic clock.
	Clock clock.Clock
}

// SeedConfig is the seed's breaker: open after 5 consecutive failures, stay
// open 60 s, then one probe. The failure-rate window stays at its defaults
// (a count window of 100 calls, 50%, at least 10 calls).
func SeedConfig(name string) Config {
	return Config{Name: name, ConsecutiveFailures: 5, OpenDuration: 60 * time.Second}
}

// DefaultIsIgnored is the default IsIgnored: errors matching
// context.Canceled.
func DefaultIsIgnored(err error) bool { return errors.Is(err, context.Canceled) }

const pad = 64

// counts is one stripe of a bucket's counters, on its own cache line.
type counts struct {
	calls    atomic.Int64
	failures atomic.Int64
	slow     atomic.Int64
	_        [pad - 24]byte
}

func (c *counts) reset() {
	c.calls.Store(0)
	c.failures.Store(0)
	c.slow.Store(0)
}

// nstripes is the number of counter stripes per bucket in a time window, so
// that goroutines on different CPUs mostly increment different cache lines.
// A count window uses stripe 0 only: it needs one counter to know when a
// bucket is full.
const nstripes = 4

type bucket struct {
	epoch atomic.Int64 // sequence number or epoch the bucket holds
	_     [pad - 8]byte
	s     [nstripes]counts
}

func (bk *bucket) reset() {
	for i := range bk.s {
		bk.s[i].reset()
	}
}

// stripe picks a counter stripe for the calling goroutine from its stack
// address, a cheap and stable-enough hint of who is calling; the conversion
// does not make x escape.
func stripe() uintptr {
	var x byte
	return (uintptr(unsafe.Pointer(&x)) >> 13) & (nstripes - 1)
}

// Breaker is a circuit breaker. Create it with New; all methods are safe
// for concurrent use.
type Breaker struct {
	// word packs the generation (upper 56 bits) and the State (low 8 bits);
	// every transition increments the generation.
	word atomic.Uint64
	_    [pad - 8]byte
	// probe packs, for the half-open generation in its upper 32 bits, the
	// probes admitted (bits 16-31) and succeeded (bits 0-15).
	probe atomic.Uint64
	_     [pad - 8]byte
	// cur is the current bucket's sequence number (count window) or
	// epoch, reading/bucketNs (time window).
	cur atomic.Int64
	_   [pad - 8]byte
	// since is the reading at which the current state was entered.
	since atomic.Int64

	// A count window is one slot per call of the last size calls; seq
	// numbers the calls since the window was reset, and nFail and nSlow
	// count the failed and slow outcomes the slots hold.
	slots []atomic.Uint32
	size  int64
	modM  uint64 // fastmod's multiplier for size
	nFail atomic.Int64
	_     [pad - 8]byte
	nSlow atomic.Int64
	_     [pad - 8]byte
	// consec is the current run of failures (ConsecutiveFailures).
	consec    atomic.Int64
	_         [pad - 8]byte
	consecThr int64

	buckets  []bucket // time window: ring, a power of two long
	mask     int64
	nb       int64 // buckets that make up the window (≤ len(buckets))
	count    bool
	bucketNs int64 // bucket width (time window)
	// Every bucket's epoch field holds the sequence number (count window)
	// or epoch (time window) it counts; sum ignores those outside the
	// window.

	name       string
	failThr    float64
	slowThr    float64
	slowNs     int64
	minCalls   int64
	openNs     int64
	probes     uint64
	halfOpenNs int64
	isFailure  func(error) bool
	isIgnored  func(error) bool
	onChange   func(Event)
	clk        clock.Clock

	mu       sync.Mutex // serialises transitions
	rejected stripes
}

// New returns a closed Breaker.
func New(cfg Config) *Breaker {
	if cfg.WindowSize <= 0 {
		cfg.WindowSize = 100
	}
	if cfg.WindowDuration <= 0 {
		cfg.WindowDuration = 10 * time.Second
	}
	if cfg.Buckets <= 0 {
		cfg.Buckets = 10
	}
	if cfg.FailureRateThreshold <= 0 || cfg.FailureRateThreshold > 1 {
		cfg.FailureRateThreshold = 0.5
	}
	if cfg.SlowCallRateThreshold <= 0 || cfg.SlowCallRateThreshold > 1 {
		cfg.SlowCallRateThreshold = 1
	}
	if cfg.MinimumCalls <= 0 {
		cfg.MinimumCalls = 10
	}
	if cfg.Window == CountWindow && cfg.MinimumCalls > cfg.WindowSize {
		// The window never holds more than WindowSize calls: a larger
		// minimum would never let the breaker open.
		cfg.MinimumCalls = cfg.WindowSize
	}
	if cfg.OpenDuration <= 0 {
		cfg.OpenDuration = 5 * time.Second
	}
	if cfg.HalfOpenProbes <= 0 {
		cfg.HalfOpenProbes = 1
	}
	cfg.HalfOpenProbes = min(cfg.HalfOpenProbes, 0xffff)
	if cfg.HalfOpenTimeout <= 0 {
		cfg.HalfOpenTimeout = cfg.OpenDuration
	}
	if cfg.IsFailure == nil {
		cfg.IsFailure = func(error) bool { return true }
	}
	if cfg.IsIgnored == nil {
		cfg.IsIgnored = DefaultIsIgnored
	}
	b := &Breaker{
		count:      cfg.Window == CountWindow,
		name:       cfg.Name,
		failThr:    cfg.FailureRateThreshold,
		slowThr:    cfg.SlowCallRateThreshold,
		slowNs:     int64(cfg.SlowCallDuration),
		minCalls:   int64(cfg.MinimumCalls),
		consecThr:  int64(max(0, cfg.ConsecutiveFailures)),
		openNs:     int64(cfg.OpenDuration),
		probes:     uint64(cfg.HalfOpenProbes),
		halfOpenNs: int64(cfg.HalfOpenTimeout),
		isFailure:  cfg.IsFailure,
		isIgnored:  cfg.IsIgnored,
		onChange:   cfg.OnStateChange,
		clk:        cfg.Clock,
	}
	if b.count {
		cfg.WindowSize = min(cfg.WindowSize, 1<<24)
		b.size = int64(cfg.WindowSize)
		b.modM = ^uint64(0)/uint64(cfg.WindowSize) + 1
		b.slots = make([]atomic.Uint32, cfg.WindowSize)
		b.buckets = make([]bucket, 1) // unused; keeps mask valid
	} else {
		// The window is the last nb epochs; the ring is rounded up to a
		// power of two so that an epoch's slot is a mask away.
		ring := 1
		for ring < cfg.Buckets {
			ring <<= 1
		}
		b.nb = int64(cfg.Buckets)
		b.buckets = make([]bucket, ring)
		b.bucketNs = max(1, int64(cfg.WindowDuration)/int64(cfg.Buckets))
		for i := range b.buckets {
			b.buckets[i].epoch.Store(-1 << 62)
		}
		b.cur.Store(-1 << 62)
	}
	b.mask = int64(len(b.buckets) - 1)
	b.since.Store(b.now())
	return b
}

func (b *Breaker) now() int64 {
	if b.clk != nil {
		return b.clk.Nanotime()
	}
	return clock.Coarse()
}

// Name returns the configured name.
func (b *Breaker) Name() string { return b.name }

const (
	kindNone uint8 = iota
	kindRecord
	kindProbe
)

// Token is a permit returned by Allow. Call Done exactly once with the
// call's outcome; a Token that is dropped without Done is harmless in the
// closed state, and in the half-open state it is covered by HalfOpenTimeout.
// The zero Token's Done does nothing.
type Token struct {
	b     *Breaker
	word  uint64
	start int64
	kind  uint8
}

// Allow asks to make a call. On success it returns a Token whose Done must
// be called with the call's error; otherwise it returns ErrOpen or
// ErrTooManyProbes and the call must not be made.
func (b *Breaker) Allow() (Token, error) {
	w := b.word.Load()
	switch State(w) {
	case Closed, ForcedClosed:
		t := Token{b: b, word: w, kind: kindRecord}
		if b.slowNs > 0 {
			t.start = b.now()
		}
		return t, nil
	case Disabled:
		return Token{}, nil
	case ForcedOpen:
		b.rejected.inc()
		return Token{}, ErrOpen
	}
	return b.allowSlow(w)
}

func (b *Breaker) allowSlow(w uint64) (Token, error) {
	for {
		now := b.now()
		switch State(w) {
		case Open:
			if now-b.since.Load() < b.openNs {
				b.rejected.inc()
				return Token{}, ErrOpen
			}
			b.transition(w, HalfOpen, now)
		case HalfOpen:
			if now-b.since.Load() >= b.halfOpenNs {
				b.transition(w, Open, now)
				b.rejected.inc()
				return Token{}, ErrOpen
			}
			gen := w >> 8
			for {
				p := b.probe.Load()
				admitted, succeeded := p>>16&0xffff, p&0xffff
				if p>>32 != gen&0xffffffff {
					admitted, succeeded = 0, 0
				}
				if admitted >= b.probes {
					b.rejected.inc()
					return Token{}, ErrTooManyProbes
				}
				if b.probe.CompareAndSwap(p, gen<<32|(admitted+1)<<16|succeeded) {
					return Token{b: b, word: w, start: now, kind: kindProbe}, nil
				}
			}
		default:
			return b.Allow()
		}
		w = b.word.Load()
	}
}

// Done reports the outcome of the call the Token admitted: nil for success,
// otherwise an error that the breaker's IsFailure judges. Outcomes of calls
// admitted before the latest state change are ignored.
func (t Token) Done(err error) {
	switch t.kind {
	case kindRecord:
		t.b.record(t, err)
	case kindProbe:
		t.b.probeDone(t, err)
	}
}

// Abandon gives up a Token whose call was not made after all (a later
// stage rejected it): nothing is recorded and a half-open probe slot is
// given back. Call it instead of Done, not after it.
func (t Token) Abandon() {
	if t.kind == kindProbe {
		t.b.releaseProbe(t.word)
	}
}

func (b *Breaker) releaseProbe(w uint64) {
	gen := w >> 8 & 0xffffffff
	for {
		p := b.probe.Load()
		if b.word.Load() != w || p>>32 != gen || p>>16&0xffff == 0 {
			return
		}
		if b.probe.CompareAndSwap(p, p-1<<16) {
			return
		}
	}
}

func (b *Breaker) record(t Token, err error) {
	if b.word.Load() != t.word {
		return // the outcome belongs to an earlier period
	}
	failed := false
	if err != nil {
		if b.isIgnored(err) {
			return
		}
		failed = b.isFailure(err)
	}
	var now int64
	if b.slowNs > 0 || !b.count {
		if b.clk == nil { // b.now(), inlined by hand for the hot path
			now = clock.Coarse()
		} else {
			now = b.clk.Nanotime()
		}
	}
	slow := b.slowNs > 0 && now-t.start >= b.slowNs
	b.add(now, failed, slow)
	if b.consecThr > 0 {
		if !failed {
			if b.consec.Load() != 0 {
				b.consec.Store(0)
			}
		} else if b.consec.Add(1) >= b.consecThr && State(t.word) == Closed {
			b.transition(t.word, Open, b.now())
			return
		}
	}
	if (failed || slow) && State(t.word) == Closed {
		if b.count && b.slowNs == 0 {
			now = b.now()
		}
		b.evaluate(t.word, now)
	}
}

// add counts one outcome: in its slot (count window), or in the bucket of
// now, rotating the ring when a new bucket starts (time window). On the
// time window's fast path that is one atomic load of a read-mostly word and
// one atomic add; calls racing a rotation may be lost from its counts.
func (b *Breaker) add(now int64, failed, slow bool) {
	if b.count {
		b.addSlot(failed, slow)
		return
	}
	// Most calls land in the latest epoch's bucket: check that with a
	// multiplication before paying for a division.
	e := b.cur.Load()
	if start := e * b.bucketNs; now < start || now-start >= b.bucketNs {
		e = b.rotate(now)
	}
	c := &b.buckets[e&b.mask].s[stripe()]
	c.calls.Add(1)
	if failed {
		c.failures.Add(1)
	}
	if slow {
		c.slow.Add(1)
	}
}

// Slot values of a count window: 0 is a slot no call has filled yet.
const (
	slotCall uint32 = 1 << iota
	slotFailed
	slotSlow
)

// addSlot records one outcome in the count window: it takes the next call
// number and replaces the outcome WindowSize calls back. In the steady
// state of successes replacing successes it is one atomic add and one
// load; the slot is written only when its outcome changes.
func (b *Breaker) addSlot(failed, slow bool) {
	v := slotCall
	if failed {
		v |= slotFailed
	}
	if slow {
		v |= slotSlow
	}
	seq := b.cur.Add(1) - 1
	s := &b.slots[fastmod(uint32(seq), b.modM, uint64(b.size))]
	old := s.Load()
	if old == v {
		return
	}
	old = s.Swap(v)
	if d := int64(v&slotFailed>>1) - int64(old&slotFailed>>1); d != 0 {
		b.nFail.Add(d)
	}
	if d := int64(v&slotSlow>>2) - int64(old&slotSlow>>2); d != 0 {
		b.nSlow.Add(d)
	}
}

// fastmod returns x % d for the multiplier m = ^uint64(0)/d + 1 (Lemire's
// method, exact for every 32-bit x and d), without a division on the hot
// path. The call number is taken modulo 2³²: once every 4 billion calls
// in one closed period the slot sequence restarts, which shifts which
// outcome the next WindowSize calls replace, never the counts.
func fastmod(x uint32, m, d uint64) uint64 {
	hi, _ := bits.Mul64(m*uint64(x), d)
	return hi
}

// rotate makes the epoch of now current (time window) and returns the epoch
// to count in. A stale reading counts in the current epoch.
func (b *Breaker) rotate(now int64) int64 {
	e := b.epochOf(now)
	for {
		old := b.cur.Load()
		if e <= old {
			return old
		}
		bk := &b.buckets[e&b.mask]
		if b.cur.CompareAndSwap(old, e) {
			bk.reset()
			bk.epoch.Store(e)
			return e
		}
	}
}

func (b *Breaker) epochOf(now int64) int64 {
	e := now / b.bucketNs
	if now < 0 && e*b.bucketNs != now {
		e--
	}
	return e
}

// sum totals the window.
func (b *Breaker) sum(now int64) (calls, failures, slow int64) {
	if b.count {
		return min(b.cur.Load(), b.size), b.nFail.Load(), b.nSlow.Load()
	}
	hi := b.cur.Load()
	if !b.count {
		hi = max(hi, b.epochOf(now))
	}
	lo := hi - b.nb + 1
	for i := range b.buckets {
		bk := &b.buckets[i]
		if e := bk.epoch.Load(); e < lo || e > hi {
			continue
		}
		for j := range bk.s {
			c := &bk.s[j]
			calls += c.calls.Load()
			failures += c.failures.Load()
			slow += c.slow.Load()
		}
	}
	return
}

func (b *Breaker) evaluate(w uint64, now int64) {
	calls, failures, slow := b.sum(now)
	if calls < b.minCalls || calls == 0 {
		return
	}
	if float64(failures)/float64(calls) >= b.failThr ||
		(b.slowNs > 0 && float64(slow)/float64(calls) >= b.slowThr) {
		b.transition(w, Open, now)
	}
}

func (b *Breaker) probeDone(t Token, err error) {
	w := b.word.Load()
	if w != t.word {
		return
	}
	now := b.now()
	gen := w >> 8 & 0xffffffff
	if err != nil && b.isIgnored(err) {
		b.releaseProbe(w) // not a verdict: give the probe slot back
		return
	}
	if (err != nil && b.isFailure(err)) || (b.slowNs > 0 && now-t.start >= b.slowNs) {
		b.transition(w, Open, now)
		return
	}
	for {
		p := b.probe.Load()
		if p>>32 != gen {
			return
		}
		if b.probe.CompareAndSwap(p, p+1) {
			if (p+1)&0xffff >= b.probes {
				b.transition(w, Closed, now)
			}
			return
		}
	}
}

// transition moves from the state word from to state to, unless another
// transition got there first. It reports whether it did.
func (b *Breaker) transition(from uint64, to State, now int64) bool {
	b.mu.Lock()
	if b.word.Load() != from {
		b.mu.Unlock()
		return false
	}
	next := b.setLocked(from, to, now)
	b.mu.Unlock()
	b.emit(State(from), to, next>>8)
	return true
}

// setLocked installs state to; b.mu must be held.
func (b *Breaker) setLocked(from uint64, to State, now int64) uint64 {
	b.since.Store(now)
	if to == Closed || to == ForcedClosed {
		b.resetWindow()
	}
	next := (from>>8+1)<<8 | uint64(to)
	b.word.Store(next)
	return next
}

func (b *Breaker) resetWindow() {
	b.consec.Store(0)
	if b.count {
		b.cur.Store(0)
		for i := range b.slots {
			b.slots[i].Store(0)
		}
		b.nFail.Store(0)
		b.nSlow.Store(0)
		return
	}
	for i := range b.buckets {
		bk := &b.buckets[i]
		bk.reset()
	}
}

func (b *Breaker) emit(from, to State, seq uint64) {
	if b.onChange != nil && from != to {
		b.onChange(Event{Name: b.name, From: from, To: to, Seq: seq})
	}
}

func (b *Breaker) force(to State) {
	now := b.now()
	b.mu.Lock()
	from := b.word.Load()
	next := b.setLocked(from, to, now)
	b.mu.Unlock()
	b.emit(State(from), to, next>>8)
}

// ForceOpen pins the breaker open: every call is rejected with ErrOpen
// until Reset.
func (b *Breaker) ForceOpen() { b.force(ForcedOpen) }

// ForceClosed pins the breaker closed: every call is admitted and counted,
// but the breaker never opens until Reset.
func (b *Breaker) ForceClosed() { b.force(ForcedClosed) }

// Disable turns the breaker off: every call is admitted and nothing is
// counted until Reset.
func (b *Breaker) Disable() { b.force(Disabled) }

// Reset returns the breaker to normal operation in the closed state with an
// empty window.
func (b *Breaker) Reset() { b.force(Closed) }

// State returns the current state, first applying any transition that is
// due by time alone (an open breaker whose OpenDuration has passed reports
// HalfOpen on its next call, not here; a half-open breaker past its
// HalfOpenTimeout reopens here).
func (b *Breaker) State() State {
	w := b.word.Load()
	if State(w) == HalfOpen {
		if now := b.now(); now-b.since.Load() >= b.halfOpenNs {
			b.transition(w, Open, now)
			w = b.word.Load()
		}
	}
	return State(w)
}

// Execute runs fn if the breaker admits it and records its outcome. A
// rejected call returns ErrOpen or ErrTooManyProbes without running fn. A
// call that panics records no outcome (a half-open probe lost that way is
// covered by HalfOpenTimeout); recover inside fn to count panics as
// failures.
func (b *Breaker) Execute(ctx context.Context, fn func(context.Context) error) error {
	t, err := b.Allow()
	if err != nil {
		return err
	}
	err = fn(ctx)
	t.Done(err)
	return err
}

// Metrics is a snapshot of a breaker's window and counters.
type Metrics struct {
	State       State
	Calls       int64   // calls in the window
	Failures    int64   // failed calls in the window
	SlowCalls   int64   // slow calls in the window
	FailureRate float64 // Failures/Calls, 0 for an empty window
	SlowRate    float64 // SlowCalls/Calls, 0 for an empty window
	Rejected    uint64  // calls rejected since creation
}

// Metrics returns a snapshot. It takes no lock; under concurrent calls the
// numbers are mutually consistent only approximately.
func (b *Breaker) Metrics() Metrics {
	m := Metrics{State: b.State(), Rejected: b.rejected.load()}
	m.Calls, m.Failures, m.SlowCalls = b.sum(b.now())
	if m.Calls > 0 {
		m.FailureRate = float64(m.Failures) / float64(m.Calls)
		m.SlowRate = float64(m.SlowCalls) / float64(m.Calls)
	}
	return m
}

// ComponentState implements component.Reporter: kind "breaker", the state's
// name, and the metrics "failure_rate", "slow_call_rate", "calls" and
// "rejected".
func (b *Breaker) ComponentState() component.State {
	m := b.Metrics()
	return component.State{
		Kind:  "breaker",
		State: m.State.String(),
		Metrics: map[string]float64{
			"failure_rate":   m.FailureRate,
			"slow_call_rate": m.SlowRate,
			"calls":          float64(m.Calls),
			"rejected":       float64(m.Rejected),
		},
	}
}

// stripes is a counter whose increments from different goroutines mostly
// land on different cache lines.
type stripes struct {
	s [nstripes]struct {
		n atomic.Uint64
		_ [pad - 8]byte
	}
}

func (c *stripes) inc() { c.s[stripe()].n.Add(1) }

func (c *stripes) load() (t uint64) {
	for i := range c.s {
		t += c.s[i].n.Load()
	}
	return t
}
