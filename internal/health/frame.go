package health

import (
	"strconv"
	"time"

	"github.com/brownout-io/brownout/sdk/wire"
)

// DecodeReportFrame decodes a websocket report frame in the plain form
// clients send ({"type":"report","cpu_percent":…}) without reflection:
// every connected instance sends one every few seconds, and encoding/json
// with the strict-key check costs a dozen allocations and most of a
// report's CPU.
//
// It takes only what it can decode exactly as brownout.DecodeJSON into the
// server's frame type would: the keys type (equal to "report"), service,
// instance, cpu_percent, memory_percent, requests, errors, error_rate, at
// and components (kind, state and metrics, under names without upper-case
// letters), each spelled as the contract spells it and at most once;
// strings of printable ASCII without escapes; numbers in JSON's grammar
// that fit their field; JSON whitespace between tokens. Anything else
// (another key or spelling, a duplicate, null, an escape, a number out of
// range, malformed or trailing input) returns ok false, and the caller
// decodes the frame the general way, which accepts or refuses it with its
// usual message. So the two paths accept the same frames with the same
// report, and refuse the same frames with the same error.
//
// service and instance are the connection's own: a frame that names them
// shares their strings instead of allocating copies.
func DecodeReportFrame(data []byte, service, instance string) (r Report, ok bool) {
	p := frameParser{data: data}
	p.ws()
	if !p.byte('{') {
		return Report{}, false
	}
	var vals *reportValues
	var seen uint16
	first := true
	for {
		p.ws()
		if first && p.byte('}') {
			break
		}
		if !first && !p.byte(',') {
			if p.byte('}') {
				break
			}
			return Report{}, false
		}
		first = false
		p.ws()
		key, ok := p.str()
		if !ok {
			return Report{}, false
		}
		k := frameKey(key)
		if k < 0 || seen&(1<<k) != 0 {
			return Report{}, false
		}
		seen |= 1 << k
		p.ws()
		if !p.byte(':') {
			return Report{}, false
		}
		p.ws()
		switch k {
		case keyType:
			v, ok := p.str()
			if !ok || string(v) != wire.TypeReport {
				return Report{}, false
			}
		case keyService, keyInstance:
			v, ok := p.str()
			if !ok {
				return Report{}, false
			}
			own := service
			if k == keyInstance {
				own = instance
			}
			s := own
			if string(v) != own {
				s = string(v)
			}
			if k == keyService {
				r.Service = s
			} else {
				r.Instance = s
			}
		case keyCPU, keyMemory, keyErrorRate:
			lit, ok := p.number()
			if !ok {
				return Report{}, false
			}
			f, err := strconv.ParseFloat(string(lit), 64)
			if err != nil {
				return Report{}, false
			}
			if vals == nil {
				vals = new(reportValues)
			}
			switch k {
			case keyCPU:
				vals.cpu, r.CPUPercent = f, &vals.cpu
			case keyMemory:
				vals.mem, r.MemoryPercent = f, &vals.mem
			default:
				vals.rate, r.ErrorRate = f, &vals.rate
			}
		case keyRequests, keyErrors:
			lit, ok := p.number()
			if !ok {
				return Report{}, false
			}
			n, err := strconv.ParseInt(string(lit), 10, 64)
			if err != nil {
				return Report{}, false
			}
			if k == keyRequests {
				r.Requests = n
			} else {
				r.Errors = n
			}
		case keyAt:
			start := p.i
			if _, ok := p.str(); !ok {
				return Report{}, false
			}
			if vals == nil {
				vals = new(reportValues)
			}
			// The same method encoding/json calls with the same bytes.
			if err := vals.at.UnmarshalJSON(p.data[start:p.i]); err != nil {
				return Report{}, false
			}
			r.At = &vals.at
		case keyComponents:
			cs, ok := p.components()
			if !ok {
				return Report{}, false
			}
			r.Components = cs
		}
	}
	p.ws()
	if p.i != len(p.data) || seen&(1<<keyType) == 0 {
		return Report{}, false
	}
	return r, true
}

// reportValues holds what a decoded report's pointer fields point to, so
// that a report costs one allocation for all of them.
type reportValues struct {
	cpu, mem, rate float64
	at             time.Time
}

// The keys DecodeReportFrame takes, as bit positions.
const (
	keyType = iota
	keyService
	keyInstance
	keyCPU
	keyMemory
	keyRequests
	keyErrors
	keyErrorRate
	keyAt
	keyComponents
)

func frameKey(k []byte) int {
	switch string(k) {
	case "type":
		return keyType
	case "service":
		return keyService
	case "instance":
		return keyInstance
	case "cpu_percent":
		return keyCPU
	case "memory_percent":
		return keyMemory
	case "requests":
		return keyRequests
	case "errors":
		return keyErrors
	case "error_rate":
		return keyErrorRate
	case "at":
		return keyAt
	case "components":
		return keyComponents
	}
	return -1
}

// components consumes a report's components: an object of component
// states, each with kind, state and metrics as the contract spells them.
// Names (of components and metrics) must hold no upper-case letter, so
// that a duplicate is an exact one, which it leaves to the general decoder
// like every other duplicate.
func (p *frameParser) components() (map[string]wire.ComponentState, bool) {
	out := map[string]wire.ComponentState{}
	ok := p.object(func(name string) bool {
		if _, dup := out[name]; dup {
			return false
		}
		var c wire.ComponentState
		var seen uint8
		ok := p.object(func(key string) bool {
			switch key {
			case "kind", "state":
				bit := uint8(1)
				if key == "state" {
					bit = 2
				}
				if seen&bit != 0 {
					return false
				}
				seen |= bit
				v, ok := p.str()
				if !ok {
					return false
				}
				if key == "kind" {
					c.Kind = string(v)
				} else {
					c.State = string(v)
				}
				return true
			case "metrics":
				if seen&4 != 0 {
					return false
				}
				seen |= 4
				c.Metrics = map[string]float64{}
				return p.object(func(m string) bool {
					if _, dup := c.Metrics[m]; dup {
						return false
					}
					lit, ok := p.number()
					if !ok {
						return false
					}
					f, err := strconv.ParseFloat(string(lit), 64)
					if err != nil {
						return false
					}
					c.Metrics[m] = f
					return true
				})
			}
			return false
		})
		if !ok {
			return false
		}
		out[name] = c
		return true
	})
	return out, ok
}

// object consumes an object whose keys are lower-case names (see
// components), calling value with each key once the parser stands on its
// value; value consumes the value and reports whether it could.
func (p *frameParser) object(value func(key string) bool) bool {
	if !p.byte('{') {
		return false
	}
	p.ws()
	if p.byte('}') {
		return true
	}
	for {
		p.ws()
		k, ok := p.str()
		if !ok {
			return false
		}
		for _, c := range k {
			if c >= 'A' && c <= 'Z' {
				return false
			}
		}
		p.ws()
		if !p.byte(':') {
			return false
		}
		p.ws()
		if !value(string(k)) {
			return false
		}
		p.ws()
		if p.byte('}') {
			return true
		}
		if !p.byte(',') {
			return false
		}
	}
}

// frameParser walks one frame for DecodeReportFrame; every method
// consumes what it recognises and reports whether it did.
type frameParser struct {
	data []byte
	i    int
}

func (p *frameParser) ws() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *frameParser) byte(c byte) bool {
	if p.i < len(p.data) && p.data[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str consumes a string of printable ASCII without escapes and returns
// its contents.
func (p *frameParser) str() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.data) {
		c := p.data[p.i]
		switch {
		case c == '"':
			s := p.data[start:p.i]
			p.i++
			return s, true
		case c == '\\' || c < 0x20 || c > 0x7e:
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// number consumes a number in JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *frameParser) number() ([]byte, bool) {
	start := p.i
	p.byte('-')
	switch {
	case p.byte('0'):
	case p.i < len(p.data) && p.data[p.i] >= '1' && p.data[p.i] <= '9':
		p.digits()
	default:
		return nil, false
	}
	if p.byte('.') && !p.digits() {
		return nil, false
	}
	if p.byte('e') || p.byte('E') {
		if !p.byte('+') {
			p.byte('-')
		}
		if !p.digits() {
			return nil, false
		}
	}
	return p.data[start:p.i], true
}

// digits consumes one or more decimal digits.
func (p *frameParser) digits() bool {
	start := p.i
	for p.i < len(p.data) && p.data[p.i] >= '0' && p.data[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}
