package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Middleware counts every request next serves for the reports: a response
// with status 5xx, or a panic, counts as an error. The panic is re-raised
// after counting, so that the server's own recovery still sees it. Responses
// shed by Shed are not counted at all: counting them as errors would feed
// the degradation back into the signal that caused it.
func (c *Client) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				c.requests.Add(1)
				c.errs.Add(1)
				panic(p)
			}
			if rec.shed {
				return
			}
			c.requests.Add(1)
			if rec.status >= 500 {
				c.errs.Add(1)
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// statusRecorder captures the status code of a response.
type statusRecorder struct {
	http.ResponseWriter
	status int
	shed   bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush lets streaming handlers flush through the recorder.
func (s *statusRecorder) Flush() {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController access to the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) markShed() { s.shed = true }

// Transport wraps base (http.DefaultTransport if nil) so that every
// outgoing request is counted for the reports: a transport error or a 5xx
// response counts as an error. Use it where a service's health is the
// health of the calls it makes; with Middleware on the same work, each
// request is counted twice.
func (c *Client) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return roundTripper{c: c, base: base}
}

type roundTripper struct {
	c    *Client
	base http.RoundTripper
}

func (t roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	t.c.requests.Add(1)
	if err != nil || resp.StatusCode >= 500 {
		t.c.errs.Add(1)
	}
	return resp, err
}

// Shed marks next as optional: while the served level is at or above at,
// it answers 503 Service Unavailable with a Retry-After header (see
// WithRetryAfter) instead of calling next. ShedOptions replace the plain
// 503 body with a page of the caller's, such as the seed's maintenance
// status page.
func (c *Client) Shed(at Level, next http.Handler, opts ...ShedOption) http.Handler {
	var so shedOptions
	for _, o := range opts {
		o(&so)
	}
	retry := strconv.Itoa(int(c.cfg.retryAfter.Seconds()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l := c.Level()
		if l < at {
			next.ServeHTTP(w, r)
			return
		}
		markShed(w)
		w.Header().Set("Retry-After", retry)
		page := so.shed
		if l == LevelMaintenance && so.maintenance != nil {
			page = so.maintenance
		}
		if page == nil {
			http.Error(w, "temporarily unavailable: service degraded", http.StatusServiceUnavailable)
			return
		}
		page.ServeHTTP(&unavailableWriter{ResponseWriter: w}, r)
	})
}

// A ShedOption configures what Shed answers instead of the route.
type ShedOption func(*shedOptions)

type shedOptions struct {
	shed, maintenance http.Handler
}

// WithShedPage serves page instead of the plain 503 whenever the route is
// shed. Its status is 503 unless page sets another.
func WithShedPage(page http.Handler) ShedOption {
	return func(o *shedOptions) { o.shed = page }
}

// WithMaintenancePage serves page while the level is MAINTENANCE (the
// seed's status page and error message), instead of the plain 503 or the
// WithShedPage page. Its status is 503 unless page sets another.
func WithMaintenancePage(page http.Handler) ShedOption {
	return func(o *shedOptions) { o.maintenance = page }
}

// unavailableWriter makes a page's implicit 200 a 503.
type unavailableWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *unavailableWriter) WriteHeader(code int) {
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *unavailableWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController and markShed reach the writer below.
func (w *unavailableWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// markShed tells a Middleware further out that this response is shed.
func markShed(w http.ResponseWriter) {
	for w != nil {
		if m, ok := w.(interface{ markShed() }); ok {
			m.markShed()
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

// PostReports sends reports over HTTP (POST /api/v1/reports) for programs
// that do not keep a connection, such as batch jobs. Each report must name
// its service and instance. It uses the client's HTTP client and token.
func (c *Client) PostReports(ctx context.Context, reports ...Report) error {
	if len(reports) == 0 {
		return nil
	}
	var body []byte
	var err error
	if len(reports) == 1 {
		body, err = json.Marshal(reports[0])
	} else {
		body, err = json.Marshal(reports)
	}
	if err != nil {
		return fmt.Errorf("encode reports: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.reportsURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post reports: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if c.cfg.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.token)
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("post reports: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post reports: %w", &StatusError{StatusCode: resp.StatusCode, Body: errorMessage(msg)})
	}
	return nil
}
