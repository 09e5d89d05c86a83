// Package levels turns service signals and stored thresholds into a
// degradation level, with asymmetric hysteresis: escalate at once to the
// highest level whose enter threshold any signal reaches in the latest
// reports (or in the window), de-escalate one level at a time only after
// every signal, in the window and in the latest reports, has stayed below
// the current level's exit threshold for the cooldown. Escalating is fast
// and de-escalating slow on purpose: a late degradation costs the requests
// a saturated service takes meanwhile, a late recovery only some optional
// content.
//
// The package is pure: time comes in as a value, nothing here does I/O.
package levels

import (
	"github.com/brownout-io/brownout/sdk/api"
	"github.com/brownout-io/brownout/sdk/wire"

	"fmt"
	"math"
	"time"

	"github.com/brownout-io/brownout"
)

// Level is a degradation level, 0 (FULL) to 3 (MAINTENANCE): the wire
// contract's, so the engine and every client agree on levels and names.
type Level = wire.Level

// The four levels.
const (
	Full        = wire.LevelFull
	Reduced     = wire.LevelReduced
	Essential   = wire.LevelEssential
	Maintenance = wire.LevelMaintenance
)

// MaxLevel is the highest level.
const MaxLevel = wire.MaxLevel

// The types below are the API's (sdk/api), so that the engine's decisions
// and thresholds travel as the CLI and other clients decode them.

// Signals are a service's aggregated signals.
type Signals = api.Signals

// Signal names as they appear in causes and field paths.
const (
	SignalCPU       = api.SignalCPU
	SignalMemory    = api.SignalMemory
	SignalErrorRate = api.SignalErrorRate
)

// Bound is one signal's pair of thresholds for one level.
type Bound = api.Bound

// LevelThresholds are the bounds of one level (1–3).
type LevelThresholds = api.LevelThresholds

func bound(lt LevelThresholds, signal string) Bound {
	switch signal {
	case SignalCPU:
		return lt.CPU
	case SignalMemory:
		return lt.Memory
	default:
		return lt.ErrorRate
	}
}

// Duration is a time.Duration that reads and writes as a Go duration string
// ("60s") in JSON.
type Duration = api.Duration

// Thresholds is a complete threshold set: cooldown plus levels 1, 2 and 3 in
// order. It is the API's api.Thresholds with the engine's checks; convert
// freely between the two.
type Thresholds api.Thresholds

// DefaultCooldown is the seed's cooldown.
const DefaultCooldown = 60 * time.Second

// Default returns the seed's thresholds: enter cpu 70/80/90, memory
// 75/85/95, error rate 0.05/0.10/0.25; exit 10 points (0.02 for error rate)
// below enter; cooldown 60 s.
func Default() Thresholds {
	cpu := []float64{70, 80, 90}
	mem := []float64{75, 85, 95}
	er := []float64{0.05, 0.10, 0.25}
	t := Thresholds{Cooldown: Duration(DefaultCooldown)}
	for i := 0; i < 3; i++ {
		t.Levels = append(t.Levels, LevelThresholds{
			Level:     Level(i + 1),
			CPU:       Bound{Enter: cpu[i], Exit: cpu[i] - 10},
			Memory:    Bound{Enter: mem[i], Exit: mem[i] - 10},
			ErrorRate: Bound{Enter: er[i], Exit: round(er[i] - 0.02)},
		})
	}
	return t
}

func round(f float64) float64 { return math.Round(f*1e9) / 1e9 }

// Limits on cooldown.
const (
	MinCooldown = time.Second
	MaxCooldown = 24 * time.Hour
)

// Validate checks a threshold set and returns a *brownout.Error with code
// EINVALID naming the first offending field, e.g. "levels[1].cpu.exit".
func (t Thresholds) Validate() error {
	c := time.Duration(t.Cooldown)
	if c < MinCooldown || c > MaxCooldown {
		return brownout.FieldErrorf(brownout.EINVALID, "cooldown", "must be between %s and %s", MinCooldown, MaxCooldown)
	}
	if len(t.Levels) != 3 {
		return brownout.FieldErrorf(brownout.EINVALID, "levels", "must hold exactly 3 entries, for levels 1, 2 and 3 in order")
	}
	for i, lt := range t.Levels {
		if lt.Level != Level(i+1) {
			return brownout.FieldErrorf(brownout.EINVALID, fmt.Sprintf("levels[%d].level", i), "must be %d (levels 1, 2 and 3 in order)", i+1)
		}
		for _, sig := range []string{SignalCPU, SignalMemory, SignalErrorRate} {
			b := bound(lt, sig)
			max := 100.0
			if sig == SignalErrorRate {
				max = 1
			}
			path := fmt.Sprintf("levels[%d].%s", i, sig)
			for _, v := range []struct {
				name string
				val  float64
			}{{"enter", b.Enter}, {"exit", b.Exit}} {
				if math.IsNaN(v.val) || v.val < 0 || v.val > max {
					return brownout.FieldErrorf(brownout.EINVALID, path+"."+v.name, "must be between 0 and %g", max)
				}
			}
			if b.Exit >= b.Enter {
				return brownout.FieldErrorf(brownout.EINVALID, path+".exit", "must be below enter (%g)", b.Enter)
			}
			if i > 0 {
				prev := bound(t.Levels[i-1], sig)
				if b.Enter <= prev.Enter {
					return brownout.FieldErrorf(brownout.EINVALID, path+".enter", "must be above level %d's enter (%g)", i, prev.Enter)
				}
				if b.Exit <= prev.Exit {
					return brownout.FieldErrorf(brownout.EINVALID, path+".exit", "must be above level %d's exit (%g)", i, prev.Exit)
				}
			}
		}
	}
	return nil
}

// For returns the thresholds of level l (1–3).
func (t Thresholds) For(l Level) LevelThresholds {
	return t.Levels[l-1]
}

// State is what the engine remembers of one service between evaluations.
type State struct {
	// Level is the computed level.
	Level Level `json:"level"`
	// CalmSince is when every signal last went below the current level's
	// exit thresholds; zero while any signal is at or above them.
	CalmSince time.Time `json:"calm_since,omitzero"`
}

// Observed is what one evaluation looks at: the latest readings (each live
// instance's most recent report), on which the level escalates at once,
// and the aggregate over the window, which must agree with the latest
// readings that the service is calm before it de-escalates.
type Observed struct {
	Latest Signals `json:"latest"`
	Window Signals `json:"window"`
}

// Sources of a trigger's value.
const (
	SourceLatest = "latest"
	SourceWindow = "window"
)

// Trigger names the signal and threshold a decision turned on.
type Trigger = api.Trigger

// Decision explains a computed level change: what it was decided on.
type Decision = api.Decision

// Evaluate is EvaluateObserved with sig as both the latest readings and
// the window's aggregate.
func Evaluate(st State, sig Signals, live bool, t Thresholds, now time.Time) (State, *Decision) {
	return EvaluateObserved(st, Observed{Latest: sig, Window: sig}, live, t, now)
}

// EvaluateObserved computes the next state from the current one. live
// tells whether the service has any live instance; without one the level
// is held and the cooldown restarts. It returns a non-nil Decision only
// when the level changes. t must be valid.
//
// It escalates at once to the highest level whose enter threshold any
// signal reaches, in the latest readings or in the window. It
// de-escalates one level, and only after every signal has stayed below
// the current level's exit threshold, in both, for the cooldown; the next
// step needs a full cooldown of its own.
func EvaluateObserved(st State, obs Observed, live bool, t Thresholds, now time.Time) (State, *Decision) {
	if !live {
		return State{Level: st.Level}, nil
	}
	// Escalation: the highest level any signal has entered, the latest
	// readings first.
	target, trig := Full, Trigger{}
	for l := Maintenance; l >= Reduced; l-- {
		if tr, ok := entered(obs.Latest, t.For(l)); ok {
			tr.Source = SourceLatest
			target, trig = l, tr
			break
		}
		if tr, ok := entered(obs.Window, t.For(l)); ok {
			tr.Source = SourceWindow
			target, trig = l, tr
			break
		}
	}
	if target > st.Level {
		return State{Level: target}, &Decision{
			From: st.Level, To: target, Trigger: trig, Signals: obs.Window, Latest: obs.Latest,
			Thresholds: t.For(target), Cooldown: t.Cooldown,
		}
	}
	if st.Level == Full {
		return State{Level: Full}, nil
	}
	cur := t.For(st.Level)
	closest, calm := calmBelow(obs, cur)
	if !calm {
		return State{Level: st.Level}, nil
	}
	if st.CalmSince.IsZero() || st.CalmSince.After(now) {
		return State{Level: st.Level, CalmSince: now}, nil
	}
	calmFor := now.Sub(st.CalmSince)
	if calmFor < time.Duration(t.Cooldown) {
		return st, nil
	}
	next := st.Level - 1
	closest.Level = st.Level
	d := &Decision{
		From: st.Level, To: next, Trigger: closest, Signals: obs.Window, Latest: obs.Latest,
		Thresholds: cur, Cooldown: t.Cooldown, CalmFor: Duration(calmFor),
	}
	// The next step needs its own full cooldown below its own exit.
	ns := State{Level: next}
	if next > Full {
		if _, ok := calmBelow(obs, t.For(next)); ok {
			ns.CalmSince = now
		}
	}
	return ns, d
}

// calmBelow reports whether every signal is below its exit threshold in
// both the window and the latest readings, and the one closest to its
// threshold.
func calmBelow(obs Observed, lt LevelThresholds) (Trigger, bool) {
	w, ok := belowExit(obs.Window, lt)
	if !ok {
		return Trigger{}, false
	}
	l, ok := belowExit(obs.Latest, lt)
	if !ok {
		return Trigger{}, false
	}
	w.Source, l.Source = SourceWindow, SourceLatest
	if l.Threshold > 0 && w.Threshold > 0 && l.Value/l.Threshold > w.Value/w.Threshold {
		return l, true
	}
	return w, true
}

// entered reports the first signal at or above its enter threshold.
func entered(sig Signals, lt LevelThresholds) (Trigger, bool) {
	for _, s := range []struct {
		name string
		v    float64
	}{{SignalCPU, sig.CPUPercent}, {SignalMemory, sig.MemoryPercent}, {SignalErrorRate, sig.ErrorRate}} {
		b := bound(lt, s.name)
		if s.v >= b.Enter {
			return Trigger{Signal: s.name, Value: s.v, Threshold: b.Enter, Kind: "enter", Level: lt.Level}, true
		}
	}
	return Trigger{}, false
}

// belowExit reports whether every signal is below its exit threshold, and
// the signal closest to its threshold (relative to the threshold).
func belowExit(sig Signals, lt LevelThresholds) (Trigger, bool) {
	best, bestRatio := Trigger{}, -1.0
	for _, s := range []struct {
		name string
		v    float64
	}{{SignalCPU, sig.CPUPercent}, {SignalMemory, sig.MemoryPercent}, {SignalErrorRate, sig.ErrorRate}} {
		b := bound(lt, s.name)
		if s.v >= b.Exit {
			return Trigger{}, false
		}
		ratio := 0.0
		if b.Exit > 0 {
			ratio = s.v / b.Exit
		}
		if ratio > bestRatio {
			bestRatio = ratio
			best = Trigger{Signal: s.name, Value: s.v, Threshold: b.Exit, Kind: "exit", Level: lt.Level}
		}
	}
	return best, true
}
