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

// Validate checks a report against the contract at time now. It returns a
// *brownout.Error naming the field: 400 for names, 422 for values. When
// service or instance are given, they must equal the report's (a websocket
// connection's own identity); empty means "take from the report".
func (r *Report) Validate(now time.Time) error {
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
	if len(r.Components) > component.MaxComponents {
		return brownout.FieldErrorf(brownout.EINVALID, "components", "must hold at most %d entries", component.MaxComponents)
	}
	for name, c := range r.Components {
		if !brownout.ValidName(name) {
			return brownout.FieldErrorf(brownout.EINVALID, "components", "%q is not a valid component name (%s)", trunc(name), brownout.NameRule)
		}
		if len(c.Kind) > MaxComponentNameLen || len(c.State) > MaxComponentNameLen {
			return brownout.FieldErrorf(brownout.EINVALID, "components."+name, "kind and state must be at most %d bytes", MaxComponentNameLen)
		}
		if len(c.Metrics) > component.MaxMetrics {
			return brownout.FieldErrorf(brownout.EINVALID, "components."+name+".metrics", "must hold at most %d entries", component.MaxMetrics)
		}
		for m, v := range c.Metrics {
			if len(m) == 0 || len(m) > MaxComponentNameLen {
				return brownout.FieldErrorf(brownout.EINVALID, "components."+name+".metrics", "metric names must be 1-%d bytes", MaxComponentNameLen)
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
