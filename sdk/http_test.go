package sdk

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func counts(c *Client) (int64, int64) { return c.requests.Load(), c.errs.Load() }

func TestMiddlewareCounts(t *testing.T) {
	c := mustConnect(t, unreachable, fastOpts(quiet))
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			io.WriteString(w, "ok")
		case "/404":
			http.NotFound(w, r)
		case "/500":
			w.WriteHeader(http.StatusInternalServerError)
			w.WriteHeader(http.StatusOK) // superfluous: the first status counts
		case "/empty":
		}
	}))
	for _, p := range []string{"/ok", "/404", "/500", "/empty"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	if req, errs := counts(c); req != 4 || errs != 1 {
		t.Fatalf("requests %d errors %d, want 4 and 1", req, errs)
	}
}

func TestMiddlewareReraisesPanics(t *testing.T) {
	c := mustConnect(t, unreachable, fastOpts(quiet))
	h := c.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("kaboom") }))
	func() {
		defer func() {
			if r := recover(); r != "kaboom" {
				t.Fatalf("recovered %v, want the handler's panic", r)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		t.Fatal("panic swallowed")
	}()
	if req, errs := counts(c); req != 1 || errs != 1 {
		t.Fatalf("requests %d errors %d, want 1 and 1", req, errs)
	}
}

func TestMiddlewareKeepsFlusher(t *testing.T) {
	c := mustConnect(t, unreachable, fastOpts(quiet))
	rec := httptest.NewRecorder()
	c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush: %v", err)
		}
	})).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if !rec.Flushed {
		t.Fatal("not flushed")
	}
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestTransportCounts(t *testing.T) {
	c := mustConnect(t, unreachable, fastOpts(quiet))
	hc := &http.Client{Transport: c.Transport(rtFunc(func(r *http.Request) (*http.Response, error) {
		switch r.URL.Path {
		case "/fail":
			return nil, errors.New("connection refused")
		case "/503":
			return &http.Response{StatusCode: 503, Body: http.NoBody, Request: r}, nil
		}
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	}))}
	for _, p := range []string{"/ok", "/fail", "/503", "/ok"} {
		resp, err := hc.Get("http://upstream" + p)
		if err == nil {
			resp.Body.Close()
		}
	}
	if req, errs := counts(c); req != 4 || errs != 2 {
		t.Fatalf("requests %d errors %d, want 4 and 2", req, errs)
	}
}

func TestRecord(t *testing.T) {
	c := mustConnect(t, unreachable, fastOpts(quiet))
	c.Record(nil)
	c.Record(errors.New("x"))
	if req, errs := counts(c); req != 2 || errs != 1 {
		t.Fatalf("requests %d errors %d", req, errs)
	}
}

func TestShed(t *testing.T) {
	var env string
	c := mustConnect(t, unreachable, fastOpts(quiet, func(c *config) {
		c.getenv = func(string) string { return env }
	}))
	optional := c.Middleware(c.Shed(LevelEssential, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "recommendations")
	})))
	serve := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		optional.ServeHTTP(rec, httptest.NewRequest("GET", "/recs", nil))
		return rec
	}
	for _, tc := range []struct {
		force  string
		status int
	}{{"", 200}, {"1", 200}, {"2", 503}, {"3", 503}} {
		env = tc.force
		c.tick()
		rec := serve()
		if rec.Code != tc.status {
			t.Fatalf("level %q: status %d, want %d", tc.force, rec.Code, tc.status)
		}
		if tc.status == 503 {
			if got := rec.Header().Get("Retry-After"); got != "30" {
				t.Fatalf("Retry-After = %q, want 30", got)
			}
			if strings.Contains(rec.Body.String(), "recommendations") {
				t.Fatal("shed route ran")
			}
		}
	}
	// Shed responses are not errors (nor requests): counting them would feed
	// the degradation back into the error rate.
	if req, errs := counts(c); req != 2 || errs != 0 {
		t.Fatalf("requests %d errors %d, want 2 and 0", req, errs)
	}
}

// Shed serves the caller's pages: the maintenance page at MAINTENANCE, the
// shed page below it, each as a 503 unless it says otherwise, and the
// requests still count as shed, not as errors.
func TestShedPages(t *testing.T) {
	var env string
	c := mustConnect(t, unreachable, fastOpts(quiet, func(c *config) {
		c.getenv = func(string) string { return env }
	}))
	route := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "route") })
	shedPage := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "busy, try later") })
	maintenance := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<h1>Down for maintenance</h1>")
	})
	h := c.Middleware(c.Shed(LevelEssential, route, WithShedPage(shedPage), WithMaintenancePage(maintenance)))
	for _, tc := range []struct {
		force  string
		status int
		body   string
	}{{"", 200, "route"}, {"2", 503, "busy, try later"}, {"3", 503, "<h1>Down for maintenance</h1>"}} {
		env = tc.force
		c.tick()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if rec.Code != tc.status || rec.Body.String() != tc.body {
			t.Fatalf("level %q: %d %q, want %d %q", tc.force, rec.Code, rec.Body.String(), tc.status, tc.body)
		}
		if tc.status == 503 && rec.Header().Get("Retry-After") == "" {
			t.Fatalf("level %q: no Retry-After", tc.force)
		}
	}
	if s := c.errs.Load(); s != 0 {
		t.Fatalf("shed pages counted as %d errors", s)
	}
	// Only a maintenance page: below MAINTENANCE the plain 503.
	h = c.Shed(LevelEssential, route, WithMaintenancePage(maintenance))
	env = "2"
	c.tick()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 503 || strings.Contains(rec.Body.String(), "maintenance") {
		t.Fatalf("ESSENTIAL with only a maintenance page: %d %q", rec.Code, rec.Body.String())
	}
}
