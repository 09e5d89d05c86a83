// Package brownout holds the vocabulary that every part of the control
// plane shares: error codes and the name rule for services, instances and
// flags. Domain logic lives in internal/health, internal/levels and
// internal/featureflags; adapters (storage, HTTP, web) sit beside them.
package brownout

import (
	"github.com/brownout-io/brownout/sdk/wire"

	"errors"
	"fmt"
)

// Error codes. The HTTP layer maps each to one status in a single table.
const (
	EINVALID      = "invalid"                // 422: well-formed but values are not acceptable
	EBADREQUEST   = "bad_request"            // 400: malformed input
	ENOTFOUND     = "not_found"              // 404
	ECONFLICT     = "conflict"               // 409
	EUNAUTHORIZED = "unauthorized"           // 401
	EFORBIDDEN    = "forbidden"              // 403
	ETOOLARGE     = "too_large"              // 413
	EMEDIATYPE    = "unsupported_media_type" // 415: a body that is not JSON
	ETHROTTLED    = "throttled"              // 429
	EUNAVAILABLE  = "unavailable"            // 503
	EINTERNAL     = "internal"               // 500: never caused by client input
)

// Error is an error meant for the API's client: its Message is safe to show.
type Error struct {
	Code    string
	Message string
	// Field names the offending field or parameter, when there is one.
	Field string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an *Error naming the field it is about.
func FieldErrorf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: field + ": " + fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of an *Error in err's chain, or EINTERNAL.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of an *Error in err's chain, or a
// generic message that reveals nothing of the internals.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// MaxNameLen is the longest service, instance or flag name.
const MaxNameLen = wire.MaxNameLen

// NameRule describes valid names, for error messages.
const NameRule = wire.NameRule

// ValidName reports whether s is a valid service, instance or flag name
// (the wire contract's rule).
func ValidName(s string) bool { return wire.ValidName(s) }

// CheckName returns a 400-class error naming field when s is not a valid name.
func CheckName(field, s string) error {
	if !ValidName(s) {
		return FieldErrorf(EBADREQUEST, field, "%q is not a valid name (%s)", truncate(s, 80), NameRule)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
