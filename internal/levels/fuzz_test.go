package levels

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
)

// FuzzThresholds decodes arbitrary JSON into Thresholds as the API does and
// validates it. Properties: nothing panics; an accepted set has a cooldown
// within bounds, three levels in order, every value within 0–100 (0–1 for
// error rate), exit below enter, both rising with the level; it survives
// a JSON round trip; and Evaluate on it stays within the four levels.
func FuzzThresholds(f *testing.F) {
	def, _ := json.Marshal(Default())
	f.Add(def, 50.0, 50.0, 0.01)
	f.Add([]byte(`{"cooldown":"1s","levels":[]}`), 0.0, 0.0, 0.0)
	f.Add([]byte(`{"cooldown":"60s","levels":[{"level":1,"cpu":{"enter":70,"exit":60},"memory":{"enter":75,"exit":65},"error_rate":{"enter":0.05,"exit":0.03}},{"level":2,"cpu":{"enter":70,"exit":60},"memory":{"enter":85,"exit":75},"error_rate":{"enter":0.1,"exit":0.08}},{"level":3,"cpu":{"enter":90,"exit":80},"memory":{"enter":95,"exit":85},"error_rate":{"enter":0.25,"exit":0.23}}]}`), 99.0, 1.0, 0.5)
	f.Add([]byte(`{"cooldown":60,"levels":null}`), 0.0, 0.0, 0.0)
	f.Add([]byte(`{"cooldown":"-5s"}`), 0.0, 0.0, 0.0)
	f.Fuzz(func(t *testing.T, data []byte, cpu, mem, er float64) {
		var th Thresholds
		if err := brownout.DecodeJSON(data, &th); err != nil {
			if brownout.ErrorCode(err) != brownout.EBADREQUEST {
				t.Fatalf("decode error code %q: %v", brownout.ErrorCode(err), err)
			}
			return
		}
		if err := th.Validate(); err != nil {
			if brownout.ErrorCode(err) != brownout.EINVALID {
				t.Fatalf("validate error code %q: %v", brownout.ErrorCode(err), err)
			}
			return
		}
		checkThresholds(t, th)
		again, err := json.Marshal(th)
		if err != nil {
			t.Fatalf("marshal valid set: %v", err)
		}
		var back Thresholds
		if err := brownout.DecodeJSON(again, &back); err != nil {
			t.Fatalf("valid set does not decode again: %v\n%s", err, again)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("valid set is invalid after a round trip: %v\n%s", err, again)
		}
		now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
		sig := Signals{CPUPercent: clamp(cpu, 100), MemoryPercent: clamp(mem, 100), ErrorRate: clamp(er, 1)}
		st := State{}
		for i := 0; i < 5; i++ {
			st, _ = Evaluate(st, sig, true, th, now.Add(time.Duration(i)*time.Duration(th.Cooldown)))
			if !st.Level.Valid() {
				t.Fatalf("Evaluate gave level %d", st.Level)
			}
		}
	})
}

func clamp(v, hi float64) float64 {
	if math.IsNaN(v) || v < 0 {
		return 0
	}
	return math.Min(v, hi)
}

func checkThresholds(t *testing.T, th Thresholds) {
	t.Helper()
	if c := time.Duration(th.Cooldown); c < MinCooldown || c > MaxCooldown {
		t.Fatalf("valid set with cooldown %s", c)
	}
	if len(th.Levels) != 3 {
		t.Fatalf("valid set with %d levels", len(th.Levels))
	}
	for i, lt := range th.Levels {
		if lt.Level != Level(i+1) {
			t.Fatalf("valid set with levels[%d].level = %d", i, lt.Level)
		}
		for _, sig := range []string{SignalCPU, SignalMemory, SignalErrorRate} {
			b, hi := bound(lt, sig), 100.0
			if sig == SignalErrorRate {
				hi = 1
			}
			for _, v := range []float64{b.Enter, b.Exit} {
				if math.IsNaN(v) || v < 0 || v > hi {
					t.Fatalf("valid set with %s value %v out of 0..%v", sig, v, hi)
				}
			}
			if b.Exit >= b.Enter {
				t.Fatalf("valid set with %s exit %v ≥ enter %v", sig, b.Exit, b.Enter)
			}
			if i > 0 {
				p := bound(th.Levels[i-1], sig)
				if b.Enter <= p.Enter || b.Exit <= p.Exit {
					t.Fatalf("valid set not rising at level %d for %s", i+1, sig)
				}
			}
		}
	}
}
