package levels

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func sig(cpu, mem, er float64) Signals {
	return Signals{CPUPercent: cpu, MemoryPercent: mem, ErrorRate: er}
}

func TestDefaultMatchesSeed(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("default thresholds invalid: %v", err)
	}
	want := []LevelThresholds{
		{Level: 1, CPU: Bound{Enter: 70, Exit: 60}, Memory: Bound{Enter: 75, Exit: 65}, ErrorRate: Bound{Enter: 0.05, Exit: 0.03}},
		{Level: 2, CPU: Bound{Enter: 80, Exit: 70}, Memory: Bound{Enter: 85, Exit: 75}, ErrorRate: Bound{Enter: 0.10, Exit: 0.08}},
		{Level: 3, CPU: Bound{Enter: 90, Exit: 80}, Memory: Bound{Enter: 95, Exit: 85}, ErrorRate: Bound{Enter: 0.25, Exit: 0.23}},
	}
	for i, got := range d.Levels {
		if got != want[i] {
			t.Errorf("level %d: got %+v, want %+v", i+1, got, want[i])
		}
	}
	if time.Duration(d.Cooldown) != 60*time.Second {
		t.Errorf("cooldown: got %v, want 60s", time.Duration(d.Cooldown))
	}
}

func TestEscalateAtOnce(t *testing.T) {
	th := Default()
	tests := []struct {
		name    string
		from    Level
		s       Signals
		want    Level
		trigger string
	}{
		{"calm stays full", Full, sig(50, 50, 0.01), Full, ""},
		{"cpu at enter 1", Full, sig(70, 50, 0), Reduced, SignalCPU},
		{"just below enter 1", Full, sig(69.99, 74.99, 0.0499), Full, ""},
		{"memory jumps two levels", Full, sig(10, 86, 0), Essential, SignalMemory},
		{"error rate jumps to maintenance", Full, sig(10, 10, 0.3), Maintenance, SignalErrorRate},
		{"highest level wins across signals", Reduced, sig(81, 96, 0.11), Maintenance, SignalMemory},
		{"already higher holds", Essential, sig(71, 10, 0), Essential, ""},
		{"between exit and enter holds", Reduced, sig(65, 10, 0), Reduced, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, d := Evaluate(State{Level: tt.from}, tt.s, true, th, t0)
			if st.Level != tt.want {
				t.Fatalf("level: got %s, want %s", st.Level, tt.want)
			}
			if tt.trigger == "" {
				if d != nil && d.To > tt.from {
					t.Fatalf("unexpected escalation %+v", d)
				}
				return
			}
			if d == nil {
				t.Fatal("no decision for a change")
			}
			if d.Trigger.Signal != tt.trigger || d.Trigger.Kind != "enter" || d.From != tt.from || d.To != tt.want {
				t.Fatalf("decision: got %+v", d)
			}
			if d.Thresholds.Level != tt.want {
				t.Fatalf("decision thresholds for level %d, want %d", d.Thresholds.Level, tt.want)
			}
		})
	}
}

func TestDeescalateOneStepAfterCooldown(t *testing.T) {
	th := Default()
	st := State{Level: Maintenance}
	calm := sig(10, 10, 0)
	now := t0
	// First calm observation starts the cooldown; nothing changes yet.
	st, d := Evaluate(st, calm, true, th, now)
	if d != nil || st.Level != Maintenance || !st.CalmSince.Equal(now) {
		t.Fatalf("first calm: got %+v %+v", st, d)
	}
	now = now.Add(59 * time.Second)
	st, d = Evaluate(st, calm, true, th, now)
	if d != nil || st.Level != Maintenance {
		t.Fatalf("before cooldown: got %+v %+v", st, d)
	}
	now = now.Add(time.Second)
	st, d = Evaluate(st, calm, true, th, now)
	if d == nil || st.Level != Essential || d.From != Maintenance || d.To != Essential {
		t.Fatalf("after cooldown: got %+v %+v", st, d)
	}
	if d.Trigger.Kind != "exit" || time.Duration(d.CalmFor) != 60*time.Second {
		t.Fatalf("decision: %+v", d)
	}
	// The next step needs a full cooldown of its own.
	st2, d2 := Evaluate(st, calm, true, th, now.Add(30*time.Second))
	if d2 != nil || st2.Level != Essential {
		t.Fatalf("second step too early: %+v %+v", st2, d2)
	}
	st3, d3 := Evaluate(st2, calm, true, th, now.Add(60*time.Second))
	if d3 == nil || st3.Level != Reduced {
		t.Fatalf("second step: %+v %+v", st3, d3)
	}
}

func TestCooldownRestartsWhenASignalReturns(t *testing.T) {
	th := Default()
	st := State{Level: Reduced}
	st, _ = Evaluate(st, sig(10, 10, 0), true, th, t0)
	// cpu back above exit (60) but below enter (70): calm resets.
	st, d := Evaluate(st, sig(65, 10, 0), true, th, t0.Add(30*time.Second))
	if d != nil || !st.CalmSince.IsZero() {
		t.Fatalf("calm not reset: %+v %+v", st, d)
	}
	st, _ = Evaluate(st, sig(10, 10, 0), true, th, t0.Add(40*time.Second))
	st, d = Evaluate(st, sig(10, 10, 0), true, th, t0.Add(90*time.Second))
	if d != nil || st.Level != Reduced {
		t.Fatalf("de-escalated before a full cooldown since the reset: %+v %+v", st, d)
	}
	st, d = Evaluate(st, sig(10, 10, 0), true, th, t0.Add(100*time.Second))
	if d == nil || st.Level != Full {
		t.Fatalf("no de-escalation after the full cooldown: %+v %+v", st, d)
	}
}

func TestNoFlapAroundThreshold(t *testing.T) {
	// A signal oscillating around enter(1) = 70 never goes below exit(1) = 60,
	// so after one escalation the level holds.
	th := Default()
	st := State{}
	changes := 0
	for i := 0; i < 600; i++ {
		v := 69.0
		if i%2 == 0 {
			v = 71
		}
		var d *Decision
		st, d = Evaluate(st, sig(v, 10, 0), true, th, t0.Add(time.Duration(i)*time.Second))
		if d != nil {
			changes++
		}
	}
	if changes != 1 || st.Level != Reduced {
		t.Fatalf("got %d changes ending at %s, want 1 ending at REDUCED", changes, st.Level)
	}
}

func TestNoLiveInstanceHoldsLevel(t *testing.T) {
	th := Default()
	st, d := Evaluate(State{Level: Essential, CalmSince: t0}, Signals{}, false, th, t0.Add(time.Hour))
	if d != nil || st.Level != Essential || !st.CalmSince.IsZero() {
		t.Fatalf("got %+v %+v", st, d)
	}
}

func TestValidate(t *testing.T) {
	mutate := func(fn func(*Thresholds)) Thresholds {
		th := Default()
		lv := make([]LevelThresholds, len(th.Levels))
		copy(lv, th.Levels)
		th.Levels = lv
		fn(&th)
		return th
	}
	tests := []struct {
		name  string
		th    Thresholds
		field string
	}{
		{"exit equals enter", mutate(func(t *Thresholds) { t.Levels[0].CPU.Exit = 70 }), "levels[0].cpu.exit"},
		{"exit above enter", mutate(func(t *Thresholds) { t.Levels[1].Memory.Exit = 90 }), "levels[1].memory.exit"},
		{"not monotonic enter", mutate(func(t *Thresholds) { t.Levels[1].CPU = Bound{Enter: 70, Exit: 65} }), "levels[1].cpu.enter"},
		{"not monotonic exit", mutate(func(t *Thresholds) { t.Levels[2].ErrorRate.Exit = 0.07 }), "levels[2].error_rate.exit"},
		{"cpu over 100", mutate(func(t *Thresholds) { t.Levels[2].CPU.Enter = 101 }), "levels[2].cpu.enter"},
		{"negative", mutate(func(t *Thresholds) { t.Levels[0].Memory.Exit = -1 }), "levels[0].memory.exit"},
		{"error rate over 1", mutate(func(t *Thresholds) { t.Levels[2].ErrorRate.Enter = 1.5 }), "levels[2].error_rate.enter"},
		{"two levels", mutate(func(t *Thresholds) { t.Levels = t.Levels[:2] }), "levels"},
		{"wrong order", mutate(func(t *Thresholds) { t.Levels[0].Level = 2 }), "levels[0].level"},
		{"cooldown zero", mutate(func(t *Thresholds) { t.Cooldown = 0 }), "cooldown"},
		{"cooldown huge", mutate(func(t *Thresholds) { t.Cooldown = Duration(48 * time.Hour) }), "cooldown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.th.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			be, ok := err.(*brownout.Error)
			if !ok || be.Code != brownout.EINVALID || be.Field != tt.field || !strings.HasPrefix(be.Message, tt.field) {
				t.Fatalf("got %#v, want field %s", err, tt.field)
			}
		})
	}
}

func TestThresholdsJSONRoundTrip(t *testing.T) {
	var th Thresholds
	in := `{"cooldown":"90s","levels":[{"level":1,"cpu":{"enter":70,"exit":60},"memory":{"enter":75,"exit":65},"error_rate":{"enter":0.05,"exit":0.03}},{"level":2,"cpu":{"enter":80,"exit":70},"memory":{"enter":85,"exit":75},"error_rate":{"enter":0.1,"exit":0.08}},{"level":3,"cpu":{"enter":90,"exit":80},"memory":{"enter":95,"exit":85},"error_rate":{"enter":0.25,"exit":0.23}}]}`
	if err := json.Unmarshal([]byte(in), &th); err != nil {
		t.Fatal(err)
	}
	if time.Duration(th.Cooldown) != 90*time.Second {
		t.Fatalf("cooldown %v", time.Duration(th.Cooldown))
	}
	out, _ := json.Marshal(th)
	if !strings.Contains(string(out), `"cooldown":"1m30s"`) {
		t.Fatalf("got %s", out)
	}
	if err := json.Unmarshal([]byte(`{"cooldown":60}`), &th); err == nil {
		t.Fatal("a number cooldown was accepted")
	}
}

func obs(latest, window Signals) Observed { return Observed{Latest: latest, Window: window} }

func TestOneHotTickEscalatesWithinOneEvaluation(t *testing.T) {
	// The window still reads the calm before the burst (mean 44 %); the
	// latest reports already read 100 %: one evaluation escalates, to the
	// highest level the latest readings enter.
	th := Default()
	st, d := EvaluateObserved(State{}, obs(sig(100, 30, 0), sig(44, 30, 0)), true, th, t0)
	if st.Level != Maintenance || d == nil {
		t.Fatalf("got %+v %+v, want MAINTENANCE at once", st, d)
	}
	if d.Trigger.Source != SourceLatest || d.Trigger.Signal != SignalCPU || d.Trigger.Value != 100 || d.Trigger.Threshold != 90 {
		t.Fatalf("trigger %+v", d.Trigger)
	}
	if d.Signals.CPUPercent != 44 || d.Latest.CPUPercent != 100 {
		t.Fatalf("decision signals: window %+v latest %+v", d.Signals, d.Latest)
	}
	// One step up from the latest readings, whatever the window says.
	st, d = EvaluateObserved(State{}, obs(sig(72, 30, 0), sig(20, 30, 0)), true, th, t0)
	if st.Level != Reduced || d == nil || d.Trigger.Source != SourceLatest {
		t.Fatalf("got %+v %+v, want REDUCED", st, d)
	}
	// The window alone still escalates (a level never enters later than it
	// did when only the window counted).
	st, d = EvaluateObserved(State{}, obs(sig(20, 30, 0), sig(81, 30, 0)), true, th, t0)
	if st.Level != Essential || d == nil || d.Trigger.Source != SourceWindow {
		t.Fatalf("got %+v %+v, want ESSENTIAL from the window", st, d)
	}
}

func TestSpikeThenCalmDoesNotOscillate(t *testing.T) {
	// One report at 95 % CPU among reports at 40 %, evaluated every second
	// for ten minutes with the window's mean as a 30 s window would give
	// it: one escalation, then one step down per cooldown, never up again.
	th := Default()
	const window = 30
	readings := make([]float64, 600)
	for i := range readings {
		readings[i] = 40
	}
	readings[100] = 95
	st := State{}
	var changes []string
	var lastChange time.Time
	for i, v := range readings {
		lo := max(0, i-window+1)
		var sum float64
		for _, r := range readings[lo : i+1] {
			sum += r
		}
		mean := sum / float64(i+1-lo)
		now := t0.Add(time.Duration(i) * time.Second)
		var d *Decision
		st, d = EvaluateObserved(st, obs(sig(v, 10, 0), sig(mean, 10, 0)), true, th, now)
		if d == nil {
			continue
		}
		if d.To < d.From && !lastChange.IsZero() && now.Sub(lastChange) < time.Duration(th.Cooldown) {
			t.Fatalf("at %ds: stepped down %s→%s %v after the previous change, within the cooldown", i, d.From, d.To, now.Sub(lastChange))
		}
		lastChange = now
		changes = append(changes, d.From.String()+"→"+d.To.String())
	}
	want := []string{"FULL→MAINTENANCE", "MAINTENANCE→ESSENTIAL", "ESSENTIAL→REDUCED", "REDUCED→FULL"}
	if strings.Join(changes, " ") != strings.Join(want, " ") {
		t.Fatalf("changes %v, want %v", changes, want)
	}
}

func TestDeescalationNeedsTheWindow(t *testing.T) {
	// The latest readings are calm but the window is not: no calm, no
	// step down, however long it lasts.
	th := Default()
	st := State{Level: Essential}
	for i := 0; i <= 300; i++ {
		var d *Decision
		st, d = EvaluateObserved(st, obs(sig(10, 10, 0), sig(72, 10, 0)), true, th, t0.Add(time.Duration(i)*time.Second))
		if d != nil || st.Level != Essential || !st.CalmSince.IsZero() {
			t.Fatalf("at %ds: %+v %+v while the window is above exit", i, st, d)
		}
	}
	// Nor the other way round: a calm window with a latest reading above
	// exit (a step down now would come straight back up).
	st = State{Level: Essential, CalmSince: t0}
	st, d := EvaluateObserved(st, obs(sig(75, 10, 0), sig(30, 10, 0)), true, th, t0.Add(10*time.Minute))
	if d != nil || st.Level != Essential || !st.CalmSince.IsZero() {
		t.Fatalf("stepped down on a calm window with a hot latest reading: %+v %+v", st, d)
	}
	// Once both are calm, the full cooldown is still needed.
	calm := obs(sig(10, 10, 0), sig(30, 10, 0))
	st, _ = EvaluateObserved(st, calm, true, th, t0)
	st, d = EvaluateObserved(st, calm, true, th, t0.Add(59*time.Second))
	if d != nil || st.Level != Essential {
		t.Fatalf("stepped down before the cooldown: %+v %+v", st, d)
	}
	st, d = EvaluateObserved(st, calm, true, th, t0.Add(60*time.Second))
	if d == nil || st.Level != Reduced || d.Trigger.Kind != "exit" {
		t.Fatalf("no step down after the cooldown: %+v %+v", st, d)
	}
	if d.Trigger.Source != SourceWindow || d.Trigger.Value != 30 {
		t.Fatalf("closest signal: %+v, want the window's cpu", d.Trigger)
	}
}
