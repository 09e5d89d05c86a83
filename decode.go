package brownout

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"time"
)

// DecodeJSON decodes exactly one JSON value into v, refusing unknown
// fields, trailing data, duplicate keys and keys that differ only in case
// (see CheckKeys), and turns decoder errors into messages a client can act
// on. Every JSON the controller accepts, over HTTP or websocket, goes
// through it.
func DecodeJSON(data []byte, v any) error {
	if err := CheckKeys(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return DecodeError(err)
	}
	if dec.More() {
		return Errorf(EBADREQUEST, "unexpected data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return Errorf(EBADREQUEST, "unexpected data after the JSON value")
	}
	return nil
}

// DecodeError turns an encoding/json error into a 400 *Error whose
// message names the field or position, never internals.
func DecodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return Errorf(EBADREQUEST, "malformed JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		field := typ.Field
		want := jsonKind(typ.Type)
		if field == "" {
			return Errorf(EBADREQUEST, "wrong JSON type: got %s, want %s", typ.Value, want)
		}
		return FieldErrorf(EBADREQUEST, field, "wrong type: got %s, want %s", typ.Value, want)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(EBADREQUEST, "malformed JSON: unexpected end of input")
	default:
		var be *Error
		if errors.As(err, &be) {
			return be
		}
		msg := err.Error()
		msg = trimPrefix(msg, "json: ")
		return Errorf(EBADREQUEST, "malformed JSON: %s", msg)
	}
}

// jsonKind names what JSON a Go type takes, so that messages speak of
// JSON, never of the controller's Go types.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a different type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case reflect.TypeFor[time.Time]():
		return "an RFC 3339 time string"
	case reflect.TypeFor[json.RawMessage]():
		return "a JSON value"
	}
	if t.Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) || reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		return "a string"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a whole number of at least 0"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	default:
		return "a different type"
	}
}

func trimPrefix(s, p string) string {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}
