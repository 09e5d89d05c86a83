package server

import (
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/brownout-io/brownout"
)

// paginate pages a list that the controller holds in memory, in its given
// order. The cursor carries the key of the last item returned, so a page
// starts after that item even when items came or went in between; key must
// be unique within the list.
func paginate[T any](r *http.Request, items []T, key func(T) string, extra ...string) ([]T, string, error) {
	q := r.URL.Query()
	if err := onlyParams(q, append([]string{"limit", "cursor"}, extra...)...); err != nil {
		return nil, "", err
	}
	limit := brownout.MaxLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > brownout.MaxLimit {
			return nil, "", brownout.FieldErrorf(brownout.EBADREQUEST, "limit", "must be a whole number from 1 to %d", brownout.MaxLimit)
		}
		limit = n
	}
	start := 0
	if c := q.Get("cursor"); c != "" {
		raw, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil || len(raw) < 2 || raw[0] != 'k' {
			return nil, "", brownout.FieldErrorf(brownout.EBADREQUEST, "cursor", "is not a cursor from a previous page")
		}
		after := string(raw[1:])
		start = len(items)
		for i, it := range items {
			if key(it) == after {
				start = i + 1
				break
			}
		}
	}
	end := min(start+limit, len(items))
	page := items[start:end]
	next := ""
	if end < len(items) && len(page) > 0 {
		next = base64.RawURLEncoding.EncodeToString([]byte("k" + key(page[len(page)-1])))
	}
	if page == nil {
		page = []T{}
	}
	return page, next, nil
}
