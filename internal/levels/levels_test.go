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
