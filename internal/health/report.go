// Package health turns instance reports into service signals: it decodes
// and validates reports, keeps a sliding window per instance, leaves stale
// instances out, and aggregates mean CPU and memory and a request-weighted
// error rate. The package is pure: time comes in as a value.
package health

import (
	"github.com/brownout-io/brownout/sdk/wire"

	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/sdk/component"
)

// Report is one instance's report. Requests and Errors count what happened
// since the instance's previous report; a client that knows only a rate
// sends ErrorRate instead.
//
// Its fields and their JSON names are the wire contract's report; Report
// adds the controller's validation.
type Report wire.Report

// Limits on what a report may carry.
const (
	// MaxBatch is the most reports one POST may carry.
	MaxBatch = wire.MaxBatch
	// MaxCount bounds requests and errors per report.
	MaxCount = 1_000_000_000_000
	// MaxFuture is how far ahead of the controller's clock "at" may be.
	MaxFuture = 5 * time.Minute
	// MaxPast is how far behind the controller's clock "at" may be.
	MaxPast = 24 * time.Hour
	// MaxComponentNameLen bounds component and metric names.
	MaxComponentNameLen = wire.MaxNameLen
)

// Limits bound what one report may carry beyond the contract's fixed
// rules. The zero value of a field takes its default.
type Limits struct {
	// MaxComponents is the most components per report
	// (wire.MaxComponents, 64; --max-components).
	MaxComponents int
	// MaxMetrics is the most metrics per component (wire.MaxMetrics, 32;
	// --max-metrics).
	MaxMetrics int
	// MaxNameLen bounds component names, kinds, states and metric names
	// (MaxComponentNameLen, 64; --max-component-name-len).
	MaxNameLen int
}

// DefaultLimits are the protocol's limits (package wire), which the SDK
// keeps to; the server's flags may tighten or loosen them.
func DefaultLimits() Limits { return Limits{}.WithDefaults() }

// WithDefaults fills zero fields with the protocol's defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxComponents <= 0 {
		l.MaxComponents = wire.MaxComponents
	}
	if l.MaxMetrics <= 0 {
		l.MaxMetrics = wire.MaxMetrics
	}
	if l.MaxNameLen <= 0 {
		l.MaxNameLen = MaxComponentNameLen
	}
	return l
}

// ComponentsCost estimates the memory the controller spends on keeping
// components: names and strings, plus map and header overhead per entry.
// It is what the controller's component budget counts.
func ComponentsCost(cs map[string]component.State) int64 {
	var n int64
	for name, c := range cs {
		n += int64(len(name)+len(c.Kind)+len(c.State)) + 160
		for m := range c.Metrics {
			n += int64(len(m)) + 48
		}
	}
	return n
}

// Validate checks a report against the contract at time now with the
// default Limits; see ValidateWith.
func (r *Report) Validate(now time.Time) error {
	return r.ValidateWith(now, Limits{})
}

// ValidateWith checks a report against the contract at time now. It returns a
// *brownout.Error naming the field: 400 for names, 422 for values. When
// service or instance are given, they must equal the report's (a websocket
// connection's own identity); empty means "take from the report".
func (r *Report) ValidateWith(now time.Time, lim Limits) error {
	lim = lim.WithDefaults()
	if err := brownout.CheckName("service", r.Service); err != nil {
		return err
	}
	if err := brownout.CheckName("instance", r.Instance); err != nil {
		return err
	}
	if r.CPUPercent == nil {
		return brownout.FieldErrorf(brownout.EINVALID, "cpu_percent", "is required")
	}
	if r.MemoryPercent == nil {
		return brownout.FieldErrorf(brownout.EINVALID, "memory_percent", "is required")
	}
	if err := percent("cpu_percent", *r.CPUPercent); err != nil {
		return err
	}
	if err := percent("memory_percent", *r.MemoryPercent); err != nil {
		return err
	}
	if r.Requests < 0 || r.Requests > MaxCount {
		return brownout.FieldErrorf(brownout.EINVALID, "requests", "must be between 0 and %d", int64(MaxCount))
	}
	if r.Errors < 0 || r.Errors > MaxCount {
		return brownout.FieldErrorf(brownout.EINVALID, "errors", "must be between 0 and %d", int64(MaxCount))
	}
	if r.Errors > r.Requests {
		return brownout.FieldErrorf(brownout.EINVALID, "errors", "must not exceed requests (%d)", r.Requests)
	}
	if r.ErrorRate != nil {
		if v := *r.ErrorRate; math.IsNaN(v) || v < 0 || v > 1 {
			return brownout.FieldErrorf(brownout.EINVALID, "error_rate", "must be between 0 and 1")
		}
		if r.Requests > 0 || r.Errors > 0 {
			return brownout.FieldErrorf(brownout.EINVALID, "error_rate", "send either error_rate or requests/errors counts, not both")
		}
	}
	if r.At != nil {
		if r.At.After(now.Add(MaxFuture)) {
			return brownout.FieldErrorf(brownout.EINVALID, "at", "is more than %s in the future", MaxFuture)
		}
		if r.At.Before(now.Add(-MaxPast)) {
			return brownout.FieldErrorf(brownout.EINVALID, "at", "is more than %s in the past", MaxPast)
		}
	}
	if len(r.Components) > lim.MaxComponents {
		return brownout.FieldErrorf(brownout.EINVALID, "components", "holds %d components, more than the limit of %d per report (--max-components)", len(r.Components), lim.MaxComponents)
	}
	for name, c := range r.Components {
		if len(name) > lim.MaxNameLen {
			return brownout.FieldErrorf(brownout.EINVALID, "components", "component name %q is longer than the limit of %d bytes (--max-component-name-len)", trunc(name), lim.MaxNameLen)
		}
		if !brownout.ValidName(name) {
			return brownout.FieldErrorf(brownout.EINVALID, "components", "%q is not a valid component name (%s)", trunc(name), brownout.NameRule)
		}
		if len(c.Kind) > lim.MaxNameLen || len(c.State) > lim.MaxNameLen {
			return brownout.FieldErrorf(brownout.EINVALID, "components."+name, "kind and state must be at most %d bytes (--max-component-name-len)", lim.MaxNameLen)
		}
		if len(c.Metrics) > lim.MaxMetrics {
			return brownout.FieldErrorf(brownout.EINVALID, "components."+name+".metrics", "holds %d metrics, more than the limit of %d per component (--max-metrics)", len(c.Metrics), lim.MaxMetrics)
		}
		for m, v := range c.Metrics {
			if len(m) == 0 || len(m) > lim.MaxNameLen {
				return brownout.FieldErrorf(brownout.EINVALID, "components."+name+".metrics", "metric names must be 1-%d bytes (--max-component-name-len)", lim.MaxNameLen)
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return brownout.FieldErrorf(brownout.EINVALID, "components."+name+".metrics."+m, "must be a finite number")
			}
		}
	}
	return nil
}

func percent(field string, v float64) error {
	if math.IsNaN(v) || v < 0 || v > 100 {
		return brownout.FieldErrorf(brownout.EINVALID, field, "must be between 0 and 100")
	}
	return nil
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// DecodeReports reads one report object or an array of at most MaxBatch
// reports. Unknown fields, wrong types and trailing data are 400 errors that
// name the problem. It does not validate values; call Validate.
func DecodeReports(r io.Reader) ([]Report, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, brownout.Errorf(brownout.EBADREQUEST, "request body is empty; send a report object or an array of reports")
	}
	if trimmed[0] == '[' {
		var list []json.RawMessage
		if err := brownout.DecodeJSON(trimmed, &list); err != nil {
			return nil, err
		}
		if len(list) == 0 {
			return nil, brownout.Errorf(brownout.EBADREQUEST, "the array of reports is empty")
		}
		if len(list) > MaxBatch {
			return nil, brownout.Errorf(brownout.ETOOLARGE, "a batch may hold at most %d reports, got %d", MaxBatch, len(list))
		}
		out := make([]Report, len(list))
		for i, raw := range list {
			if err := brownout.DecodeJSON(raw, &out[i]); err != nil {
				var be *brownout.Error
				if errors.As(err, &be) {
					be.Message = fmt.Sprintf("report %d: %s", i, be.Message)
				}
				return nil, err
			}
		}
		return out, nil
	}
	var one Report
	if err := brownout.DecodeJSON(trimmed, &one); err != nil {
		return nil, err
	}
	return []Report{one}, nil
}
