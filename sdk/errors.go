package sdk

import (
	"errors"
	"fmt"
)

// Sentinel errors. Err and the error handler report the final ones wrapped,
// so compare with errors.Is.
var (
	// ErrUnauthorized means the controller refused the token (missing,
	// unknown or revoked): HTTP 401 on connect or close code 4401. It is
	// final: the client stops reconnecting.
	ErrUnauthorized = errors.New("brownout: unauthorized")
	// ErrForbidden means the token is valid but not for this service or
	// scope: HTTP 403 on connect or close code 4403. It is final.
	ErrForbidden = errors.New("brownout: forbidden")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("brownout: client closed")
	// ErrInvalidArgument wraps every argument error from Connect and
	// Register.
	ErrInvalidArgument = errors.New("brownout: invalid argument")
	// ErrTooManyComponents is returned by Register beyond
	// component.MaxComponents registered components.
	ErrTooManyComponents = errors.New("brownout: too many components")
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...)
}

// StatusError is a refused websocket upgrade: the controller answered the
// subscribe request with a non-101 status.
type StatusError struct {
	StatusCode int
	Body       string
}

func (e *StatusError) Error() string {
	if e.Body != "" {
		return fmt.Sprintf("brownout: subscribe refused: HTTP %d: %s", e.StatusCode, e.Body)
	}
	return fmt.Sprintf("brownout: subscribe refused: HTTP %d", e.StatusCode)
}

// Unwrap maps 401 and 403 onto ErrUnauthorized and ErrForbidden.
func (e *StatusError) Unwrap() error {
	switch e.StatusCode {
	case 401:
		return ErrUnauthorized
	case 403:
		return ErrForbidden
	}
	return nil
}

// CloseError is a connection the controller closed with a status code.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("brownout: connection closed by controller: code %d %q", e.Code, e.Reason)
}

// Unwrap maps 4401 and 4403 onto ErrUnauthorized and ErrForbidden.
func (e *CloseError) Unwrap() error {
	switch e.Code {
	case 4401:
		return ErrUnauthorized
	case 4403:
		return ErrForbidden
	}
	return nil
}

// isFinal reports whether err ends the client's attempts to connect.
func isFinal(err error) bool {
	return errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrForbidden)
}
