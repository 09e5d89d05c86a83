package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/brownout-io/brownout"
)

// Change is a level change ready to show: what moved, why, and the inputs
// it was decided on.
type Change struct {
	At       time.Time
	Service  string
	Kind     string
	From, To int
	Cause    string
	Version  uint64
	Summary  string
	Signals  string
	Inputs   string
}

type changeInputs struct {
	Signals *struct {
		CPU float64 `json:"cpu_percent"`
		Mem float64 `json:"memory_percent"`
		Err float64 `json:"error_rate"`
	} `json:"signals"`
	Instances *int `json:"instances"`
	Decision  *struct {
		Trigger struct {
			Signal    string  `json:"signal"`
			Value     float64 `json:"value"`
			Threshold float64 `json:"threshold"`
			Kind      string  `json:"kind"`
			Source    string  `json:"source"`
			Level     int     `json:"level"`
		} `json:"trigger"`
		CalmFor json.RawMessage `json:"calm_for"`
	} `json:"decision"`
	Override *brownout.Override `json:"override"`
}

// ChangeOf explains a recorded level change.
func ChangeOf(lc brownout.LevelChange) Change {
	c := Change{At: lc.At, Service: lc.Service, Kind: lc.Kind, From: lc.FromLevel, To: lc.ToLevel, Cause: lc.Cause, Version: lc.Version}
	var in changeInputs
	if len(lc.Inputs) > 0 && json.Unmarshal(lc.Inputs, &in) == nil {
		switch {
		case in.Override != nil && lc.Cause == brownout.CauseOverride:
			what := "override"
			if in.Override.Emergency {
				what = "emergency mode"
			}
			c.Summary = fmt.Sprintf("%s by %s: %s", what, in.Override.Actor, in.Override.Reason)
		case lc.Cause == brownout.CauseExpiry:
			c.Summary = "override expired; the computed level applies"
		case lc.Cause == brownout.CauseOverride:
			c.Summary = "override cleared; the computed level applies"
		case in.Decision != nil:
			t := in.Decision.Trigger
			if t.Kind == "enter" {
				where := ""
				if t.Source == "latest" {
					where = " in the latest reports"
				}
				c.Summary = fmt.Sprintf("%s %s ≥ %s%s (enter %s)", t.Signal, sigFmt(t.Signal, t.Value), sigFmt(t.Signal, t.Threshold), where, LevelLabel(t.Level))
			} else {
				calm := ""
				var s string
				if json.Unmarshal(in.Decision.CalmFor, &s) == nil && s != "" {
					if d, err := time.ParseDuration(s); err == nil {
						s = d.Round(time.Second).String()
					}
					calm = " for " + s
				}
				c.Summary = fmt.Sprintf("every signal below %s exit%s (closest: %s %s < %s)", LevelLabel(t.Level), calm, t.Signal, sigFmt(t.Signal, t.Value), sigFmt(t.Signal, t.Threshold))
			}
		}
		if in.Signals != nil {
			c.Signals = fmt.Sprintf("cpu %s · memory %s · errors %s", Pct(in.Signals.CPU), Pct(in.Signals.Mem), Rate(in.Signals.Err))
			if in.Instances != nil {
				c.Signals += fmt.Sprintf(" · %d live", *in.Instances)
			}
		}
		var pretty bytes.Buffer
		if json.Indent(&pretty, lc.Inputs, "", "  ") == nil {
			c.Inputs = pretty.String()
		}
	}
	if c.Summary == "" {
		c.Summary = strings.ReplaceAll(lc.Cause, "_", " ")
	}
	return c
}

func sigFmt(signal string, v float64) string {
	if signal == "error_rate" {
		return Rate(v)
	}
	return Pct(v)
}
