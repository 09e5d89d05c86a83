package brownout

import (
	"encoding/json"
	"strconv"
	"strings"
)

// maxKeyDepth matches encoding/json's nesting limit; deeper input is left
// to the decoder, which refuses it.
const maxKeyDepth = 10000

// keyFrame is one open object or array while CheckKeys walks a document.
type keyFrame struct {
	object    bool
	expectKey bool
	elem      int      // arrays: index of the current element
	name      string   // the key or index this value sits under, for paths
	folded    []string // keys seen so far, case-folded
	raw       []string // the same keys as sent
	index     map[string]int
}

// find returns the position of a key whose folded form is folded, or -1.
func (f *keyFrame) find(folded string) int {
	if f.index != nil {
		if i, ok := f.index[folded]; ok {
			return i
		}
		return -1
	}
	for i, k := range f.folded {
		if k == folded {
			return i
		}
	}
	return -1
}

func (f *keyFrame) add(folded, raw string) {
	f.folded = append(f.folded, folded)
	f.raw = append(f.raw, raw)
	switch {
	case f.index != nil:
		f.index[folded] = len(f.folded) - 1
	case len(f.folded) > 16: // big objects: a map, so a hostile one stays linear
		f.index = make(map[string]int, 2*len(f.folded))
		for i, k := range f.folded {
			f.index[k] = i
		}
	}
}

// CheckKeys refuses a JSON document in which one object holds the same key
// twice, or two keys that differ only in case ("LEVEL" beside "level").
// encoding/json would silently keep the last of them, and matches field
// names case-insensitively, so such a document means different things to
// different parsers. The error is a 400 *Error whose Field is the key's
// path ("components.db.metrics.in_use", array elements by index). Malformed
// JSON is not its concern: it returns nil and leaves the decoder to say
// what is wrong.
func CheckKeys(data []byte) error {
	stack := make([]keyFrame, 0, 8)
	pending := "" // the key or index of the value about to start
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch c {
		case ' ', '\t', '\n', '\r', ':':
			continue
		case '{', '[':
			if len(stack) >= maxKeyDepth {
				return nil
			}
			stack = append(stack, keyFrame{object: c == '{', expectKey: c == '{', name: pending})
			pending = ""
			if c == '[' {
				pending = "0"
			}
			continue
		case '}', ']':
			if len(stack) == 0 {
				return nil
			}
			stack = stack[:len(stack)-1]
			pending = ""
			continue
		case ',':
			if len(stack) > 0 {
				f := &stack[len(stack)-1]
				if f.object {
					f.expectKey = true
				} else {
					f.elem++
					pending = strconv.Itoa(f.elem)
				}
			}
			continue
		case '"':
			end, escaped := scanString(data, i+1)
			if end < 0 {
				return nil
			}
			if len(stack) > 0 && stack[len(stack)-1].expectKey {
				f := &stack[len(stack)-1]
				f.expectKey = false
				key := string(data[i+1 : end])
				if escaped {
					if err := json.Unmarshal(data[i:end+1], &key); err != nil {
						return nil
					}
				}
				folded := strings.ToLower(strings.ToUpper(key))
				if prev := f.find(folded); prev >= 0 {
					field := keyPath(stack, key)
					if f.raw[prev] == key {
						return FieldErrorf(EBADREQUEST, field, "duplicate key %q", truncKey(key))
					}
					return FieldErrorf(EBADREQUEST, field, "key %q differs only in case from %q; each key may appear once, in one spelling", truncKey(key), truncKey(f.raw[prev]))
				}
				f.add(folded, key)
				pending = key
			} else {
				pending = ""
			}
			i = end
		default:
			pending = "" // a scalar value
		}
	}
	return nil
}

// keyPath joins the names of the open values and key with dots.
func keyPath(stack []keyFrame, key string) string {
	var b strings.Builder
	for _, f := range stack[1:] {
		b.WriteString(truncKey(f.name))
		b.WriteByte('.')
	}
	b.WriteString(truncKey(key))
	return b.String()
}

func truncKey(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// scanString returns the index of the closing quote of the string whose
// contents start at i, and whether it holds escapes; -1 if unterminated.
func scanString(data []byte, i int) (int, bool) {
	escaped := false
	for ; i < len(data); i++ {
		switch data[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i, escaped
		}
	}
	return -1, escaped
}
