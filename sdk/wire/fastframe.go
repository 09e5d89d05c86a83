package wire

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// decodeStateFast decodes a state frame in its canonical form without
// reflection: the bytes json.Marshal makes of a State (its keys in their
// order and spelling, no white space) whose strings hold no escape. Every
// subscriber decodes every change, and encoding/json spends most of its
// time there in reflection. For anything else ok is false and the caller
// takes encoding/json's path; for what it accepts it gives exactly what
// json.Unmarshal gives (FuzzDecodeFrameFastPath holds it to that).
func decodeStateFast(data []byte) (f Frame, ok bool) {
	s := scanner{b: data}
	if !s.lit(`{"type":"state","service":`) {
		return Frame{}, false
	}
	f.Type = TypeState
	ok = s.str(&f.Service) &&
		s.lit(`,"epoch":`) && s.str(&f.Epoch) &&
		s.lit(`,"version":`) && s.uint(&f.Version) &&
		s.lit(`,"level":`) && s.level(&f.Level) &&
		s.lit(`,"level_name":`) && s.str(&f.LevelName) &&
		s.lit(`,"computed_level":`) && s.level(&f.ComputedLevel) &&
		s.lit(`,"flags":`) && s.flags(&f.Flags) &&
		s.lit(`,"override":`) && s.override(&f.Override) &&
		s.lit(`,"cause":`) && s.str(&f.Cause)
	if !ok {
		return Frame{}, false
	}
	if s.lit(`,"detail":`) && !s.str(&f.Detail) {
		return Frame{}, false
	}
	if !s.lit(`,"changed_at":`) || !s.time(&f.ChangedAt) || !s.lit(`}`) || s.i != len(s.b) {
		return Frame{}, false
	}
	return f, true
}

// scanner reads a canonical frame front to back; each method consumes
// what it recognises and reports false, consuming nothing useful, for
// anything else.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) lit(l string) bool {
	if len(s.b)-s.i < len(l) || string(s.b[s.i:s.i+len(l)]) != l {
		return false
	}
	s.i += len(l)
	return true
}

// raw returns a string's bytes between its quotes: valid UTF-8 with no
// escape and no control character, which JSON decodes to themselves.
func (s *scanner) raw() ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	start := s.i + 1
	ascii := true
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			v := s.b[start:j]
			if !ascii && !utf8.Valid(v) {
				return nil, false
			}
			s.i = j + 1
			return v, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

func (s *scanner) str(dst *string) bool {
	v, ok := s.raw()
	if ok {
		*dst = string(v)
	}
	return ok
}

// digits consumes a JSON integer without sign: 0, or digits without a
// leading zero, at most 20 of them.
func (s *scanner) digits() ([]byte, bool) {
	j := s.i
	for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
		j++
	}
	d := s.b[s.i:j]
	if len(d) == 0 || len(d) > 20 || (d[0] == '0' && len(d) > 1) {
		return nil, false
	}
	s.i = j
	return d, true
}

func (s *scanner) uint(dst *uint64) bool {
	d, ok := s.digits()
	if !ok {
		return false
	}
	v, err := strconv.ParseUint(string(d), 10, 64)
	*dst = v
	return err == nil
}

func (s *scanner) level(dst *Level) bool {
	d, ok := s.digits()
	if !ok {
		return false
	}
	v, err := strconv.ParseInt(string(d), 10, strconv.IntSize)
	*dst = Level(v)
	return err == nil
}

func (s *scanner) bool(dst *bool) bool {
	switch {
	case s.lit("true"):
		*dst = true
	case s.lit("false"):
		*dst = false
	default:
		return false
	}
	return true
}

func (s *scanner) time(dst *time.Time) bool {
	start := s.i
	if _, ok := s.raw(); !ok {
		return false
	}
	// time.Time decodes itself: handing it the quoted bytes is what
	// encoding/json does.
	return dst.UnmarshalJSON(s.b[start:s.i]) == nil
}

// flags reads null (no map, as encoding/json leaves it) or an object of
// booleans; a repeated key takes its last value, as in encoding/json.
func (s *scanner) flags(dst *map[string]bool) bool {
	if s.lit("null") {
		return true
	}
	if !s.lit("{") {
		return false
	}
	m := make(map[string]bool, 8)
	*dst = m
	if s.lit("}") {
		return true
	}
	for {
		k, ok := s.raw()
		if !ok || !s.lit(":") {
			return false
		}
		var v bool
		if !s.bool(&v) {
			return false
		}
		m[string(k)] = v
		if s.lit("}") {
			return true
		}
		if !s.lit(",") {
			return false
		}
	}
}

func (s *scanner) override(dst **Override) bool {
	if s.lit("null") {
		return true
	}
	o := &Override{}
	ok := s.lit(`{"id":`) && s.str(&o.ID) &&
		s.lit(`,"service":`) && s.str(&o.Service) &&
		s.lit(`,"level":`) && s.level(&o.Level) &&
		s.lit(`,"reason":`) && s.str(&o.Reason) &&
		s.lit(`,"actor":`) && s.str(&o.Actor) &&
		s.lit(`,"emergency":`) && s.bool(&o.Emergency) &&
		s.lit(`,"created_at":`) && s.time(&o.CreatedAt) &&
		s.lit(`,"expires_at":`)
	if !ok {
		return false
	}
	if !s.lit("null") {
		var t time.Time
		if !s.time(&t) {
			return false
		}
		o.ExpiresAt = &t
	}
	if !s.lit("}") {
		return false
	}
	*dst = o
	return true
}
