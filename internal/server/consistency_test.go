package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/servertest"
)

// TestCreatedOverrideLocationResolves: the Location of a created override
// answers GET, before and after it is cleared.
func TestCreatedOverrideLocationResolves(t *testing.T) {
	s := servertest.Start(t)
	req, _ := http.NewRequest("POST", s.URL+"/api/v1/overrides", strings.NewReader(`{"service":"checkout","level":2,"reason":"db failover"}`))
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 201 || loc == "" {
		t.Fatalf("create: %d Location %q", resp.StatusCode, loc)
	}
	var o struct {
		ID, Service, Reason string
		Level               int
		ClearedAt           *time.Time `json:"cleared_at"`
	}
	s.MustDo(t, "GET", loc, s.AdminToken, nil, 200, &o)
	if o.Service != "checkout" || o.Level != 2 || o.Reason != "db failover" || o.ClearedAt != nil {
		t.Fatalf("GET %s = %+v", loc, o)
	}
	_, viewer := s.Token(t, "viewer", "")
	s.MustDo(t, "GET", loc, viewer, nil, 200, nil)
	s.MustDo(t, "DELETE", loc, s.AdminToken, nil, 200, nil)
	s.MustDo(t, "GET", loc, s.AdminToken, nil, 200, &o)
	if o.ClearedAt == nil {
		t.Fatalf("GET %s after clear: no cleared_at", loc)
	}
	s.MustDo(t, "GET", "/api/v1/overrides/ovr_nope", s.AdminToken, nil, 404, nil)
}

// TestSamplesStayInsideTheRange: a step at least as long as the range
// gives buckets inside [from, to], never one dated 1970.
func TestSamplesStayInsideTheRange(t *testing.T) {
	s := servertest.Start(t)
	s.MustDo(t, "POST", "/api/v1/reports", s.AdminToken, report("checkout", "c-1", 50, 40, 10, 1), 202, nil)
	to := time.Now().Add(time.Minute).UTC().Truncate(time.Second)
	from := to.Add(-time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	for _, step := range []string{"8760h", "1h", "2h", "7m"} {
		for {
			var out struct {
				Items []struct {
					At time.Time `json:"at"`
				} `json:"items"`
			}
			q := url.Values{"service": {"checkout"}, "from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}, "step": {step}}
			s.MustDo(t, "GET", "/api/v1/history/samples?"+q.Encode(), s.AdminToken, nil, 200, &out)
			if len(out.Items) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("step %s: no samples within 5s", step)
				}
				time.Sleep(50 * time.Millisecond)
				continue
			}
			for _, p := range out.Items {
				if p.At.Before(from) || p.At.After(to) {
					t.Errorf("step %s: point at %s outside [%s, %s]", step, p.At, from, to)
				}
			}
			break
		}
	}
}

// TestContentTypesAreTheSameEverywhere: every JSON endpoint reads its
// body as JSON with Content-Type application/json, none, or curl's default
// form type, and refuses anything else with 415. /reports used to take any
// type while the others demanded application/json.
func TestContentTypesAreTheSameEverywhere(t *testing.T) {
	s := servertest.Start(t)
	bodies := []struct{ method, path, body string }{
		{"POST", "/api/v1/reports", `{"service":"checkout","instance":"c-1","cpu_percent":1,"memory_percent":1}`},
		{"PUT", "/api/v1/services/checkout/flags", `{"levels":[{"level":0,"flags":{"analytics":true}}]}`},
		{"POST", "/api/v1/overrides", `{"service":"checkout","level":1,"reason":"x"}`},
		{"POST", "/api/v1/tokens", `{"scope":"viewer","name":"ct"}`},
		{"POST", "/api/v1/emergency", `{"reason":"ct"}`},
	}
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "", "application/x-www-form-urlencoded"} {
		for _, b := range bodies {
			st, out := doWithContentType(t, s, b.method, b.path, b.body, ct)
			if st >= 400 {
				t.Errorf("%s %s with Content-Type %q: %d %s, want success", b.method, b.path, ct, st, out)
			}
			if b.path == "/api/v1/emergency" {
				s.MustDo(t, "DELETE", "/api/v1/emergency", s.AdminToken, nil, 200, nil)
			}
		}
	}
	for _, ct := range []string{"text/plain", "multipart/form-data; boundary=x", "application/xml"} {
		for _, b := range bodies {
			st, out := doWithContentType(t, s, b.method, b.path, b.body, ct)
			if st != http.StatusUnsupportedMediaType || !strings.Contains(string(out), "Content-Type") {
				t.Errorf("%s %s with Content-Type %q: %d %s, want 415 naming Content-Type", b.method, b.path, ct, st, out)
			}
		}
	}
}
