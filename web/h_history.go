package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/web/pages/audit"
	"github.com/brownout-io/brownout/web/pages/history"
	"github.com/brownout-io/brownout/web/ui"
)

// historyPageSize is how many rows a history or audit page shows.
const historyPageSize = 50

// parseHistoryFilter reads the filter form. Times are UTC, from a
// datetime-local input or RFC 3339.
func parseHistoryFilter(q url.Values, actor bool) (history.Filter, brownout.Filter, string) {
	hf := history.Filter{Service: strings.TrimSpace(q.Get("service")), From: q.Get("from"), To: q.Get("to")}
	f := brownout.Filter{Service: hf.Service, Limit: historyPageSize, Cursor: q.Get("cursor")}
	if actor {
		hf.Actor = strings.TrimSpace(q.Get("actor"))
		f.Actor = hf.Actor
	}
	var msgs []string
	for _, p := range []struct {
		label string
		in    string
		out   *time.Time
	}{{"From", hf.From, &f.From}, {"To", hf.To, &f.To}} {
		if p.in == "" {
			continue
		}
		t, err := parseFormTime(p.in)
		if err != nil {
			msgs = append(msgs, p.label+": "+p.in+" is not a time such as 2025-01-31T14:00")
			continue
		}
		*p.out = t
	}
	return hf, f, strings.Join(msgs, "; ")
}

func parseFormTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Parse(time.RFC3339, s)
}

// pageURLs links the next page (same filter, next cursor) and the first.
func pageURLs(path string, q url.Values, next string) (first, nextURL string) {
	q = cloneValues(q)
	hadCursor := q.Get("cursor") != ""
	q.Del("cursor")
	q.Del("ok")
	if hadCursor {
		first = path + queryPrefix(q.Encode())
	}
	if next != "" {
		q.Set("cursor", next)
		nextURL = path + "?" + q.Encode()
	}
	return first, nextURL
}

func cloneValues(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	return out
}

func (h *handler) serviceNames() []string {
	views := h.d.Controller.Services()
	out := make([]string, 0, len(views))
	for _, v := range views {
		out = append(out, v.Name)
	}
	return out
}

func (h *handler) historyPage(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	q := r.URL.Query()
	hf, f, msg := parseHistoryFilter(q, false)
	m := history.Model{Meta: h.meta(r, rc, "History", "history", topicGlobal), Filter: hf, Services: h.serviceNames(), Error: msg}
	status := http.StatusOK
	if msg == "" && h.d.History != nil {
		page, err := h.d.History.ListLevelChanges(r.Context(), f)
		if err != nil {
			m.Error, status = brownout.ErrorMessage(err), http.StatusBadRequest
		}
		for _, c := range page.Items {
			m.Changes = append(m.Changes, ui.ChangeOf(c))
		}
		m.FirstURL, m.NextURL = pageURLs("/history", q, page.NextCursor)
	}
	h.render(w, r, status, history.Page(m))
}

func (h *handler) auditPage(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	q := r.URL.Query()
	hf, f, msg := parseHistoryFilter(q, true)
	m := audit.Model{Meta: h.meta(r, rc, "Audit", "audit", topicGlobal), Filter: hf, Services: h.serviceNames(), Error: msg}
	status := http.StatusOK
	if msg == "" && h.d.History != nil {
		page, err := h.d.History.ListAudit(r.Context(), f)
		if err != nil {
			m.Error, status = brownout.ErrorMessage(err), http.StatusBadRequest
		}
		for _, e := range page.Items {
			m.Entries = append(m.Entries, audit.Entry{At: e.At, Actor: e.ActorLabel(), Action: e.Action, Target: e.Target, Before: prettyJSON(e.Before), After: prettyJSON(e.After)})
		}
		m.FirstURL, m.NextURL = pageURLs("/audit", q, page.NextCursor)
	}
	h.render(w, r, status, audit.Page(m))
}

func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return "—"
	}
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}
