package brownout

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// DecodeJSON decodes exactly one JSON value into v, refusing unknown
// fields and trailing data, and turns decoder errors into messages a client
// can act on.
func DecodeJSON(data []byte, v any) error {
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
		if field == "" {
			return Errorf(EBADREQUEST, "wrong JSON type: got %s, want %s", typ.Value, typ.Type)
		}
		return FieldErrorf(EBADREQUEST, field, "wrong type: got %s, want %s", typ.Value, typ.Type)
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

func trimPrefix(s, p string) string {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}
