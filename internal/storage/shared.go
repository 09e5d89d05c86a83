package storage

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/brownout-io/brownout"
)

// AuditService derives the service an audit target is about: the NAME of
// a "service:NAME" word in it (at the start or after a space, ending at
// '/', ':', a space or the end), as in "service:checkout" or
// "override:o1 service:checkout". Targets without one, or with
// "service:*", are about no service. Stores fill their audit service
// column with it when the method does not know the service itself.
func AuditService(target string) string {
	for word := range strings.FieldsSeq(target) {
		rest, ok := strings.CutPrefix(word, "service:")
		if !ok {
			continue
		}
		if i := strings.IndexAny(rest, "/:"); i >= 0 {
			rest = rest[:i]
		}
		if brownout.ValidName(rest) {
			return rest
		}
	}
	return ""
}

// PageLimit is the page size a Filter's Limit asks for: 0 means
// DefaultLimit, above brownout.MaxLimit is clamped, negative is
// EBADREQUEST on field "limit".
func PageLimit(limit int) (int, error) {
	switch {
	case limit == 0:
		return DefaultLimit, nil
	case limit < 0:
		return 0, brownout.FieldErrorf(brownout.EBADREQUEST, "limit", "must be between 1 and %d", brownout.MaxLimit)
	case limit > brownout.MaxLimit:
		return brownout.MaxLimit, nil
	}
	return limit, nil
}

// EncodeCursor makes the opaque cursor of a list that pages by id; kind
// tags it so that one list's cursor is refused by another.
func EncodeCursor(kind string, id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + strconv.FormatInt(id, 10)))
}

// DecodeCursor returns the id in a cursor made by EncodeCursor with the
// same kind; anything else is EBADREQUEST on field "cursor".
func DecodeCursor(kind, c string) (int64, error) {
	bad := brownout.FieldErrorf(brownout.EBADREQUEST, "cursor", "is not a cursor of this list")
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, bad
	}
	rest, ok := strings.CutPrefix(string(b), kind+":")
	if !ok {
		return 0, bad
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || id <= 0 {
		return 0, bad
	}
	return id, nil
}
