package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/auth"
)

// statusOf is the one table from error codes to HTTP status.
var statusOf = map[string]int{
	brownout.EBADREQUEST:   http.StatusBadRequest,
	brownout.EUNAUTHORIZED: http.StatusUnauthorized,
	brownout.EFORBIDDEN:    http.StatusForbidden,
	brownout.ENOTFOUND:     http.StatusNotFound,
	"method_not_allowed":   http.StatusMethodNotAllowed,
	"not_implemented":      http.StatusNotImplemented,
	brownout.ECONFLICT:     http.StatusConflict,
	brownout.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	brownout.EMEDIATYPE:    http.StatusUnsupportedMediaType,
	brownout.EINVALID:      http.StatusUnprocessableEntity,
	brownout.ETHROTTLED:    http.StatusTooManyRequests,
	brownout.EINTERNAL:     http.StatusInternalServerError,
	brownout.EUNAVAILABLE:  http.StatusServiceUnavailable,
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// StatusOf returns the HTTP status for an error.
func StatusOf(err error) int {
	var be *brownout.Error
	if errors.As(err, &be) {
		if st, ok := statusOf[be.Code]; ok {
			return st
		}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, r *http.Request, err error) {
	st := StatusOf(err)
	d := errorDetail{Code: brownout.EINTERNAL, Message: "internal error"}
	var be *brownout.Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &be) && st != http.StatusInternalServerError:
		d = errorDetail{Code: be.Code, Message: be.Message, Field: be.Field}
	case errors.As(err, &mbe):
		d = errorDetail{Code: brownout.ETOOLARGE, Message: "request body is larger than " + strconv.FormatInt(mbe.Limit, 10) + " bytes"}
	default:
		if l := loggerFrom(r); l != nil {
			l.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
	}
	writeJSON(w, st, errorBody{Error: d})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// checkContentType is the one rule for request bodies on every JSON
// endpoint: the body is always read as JSON, and the Content-Type may be
// application/json (any parameters), absent, or
// application/x-www-form-urlencoded, which is what `curl -d` sends unless
// told otherwise; such a body is still parsed as JSON, never as a form.
// Anything else is a 415 naming what was sent. Accepting the form type
// opens no cross-site hole: the API authenticates only by the
// Authorization header, which a cross-site form cannot set.
func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || mt == "application/x-www-form-urlencoded") {
		return nil
	}
	return brownout.Errorf(brownout.EMEDIATYPE, "Content-Type %q is not accepted: send JSON as application/json", truncate(ct))
}

// decodeBody reads the whole (size-limited) body and decodes it strictly.
func decodeBody(r *http.Request, v any) error {
	if err := checkContentType(r); err != nil {
		return err
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	return brownout.DecodeJSON(data, v)
}

type ctxKey int

const (
	principalKey ctxKey = iota
	loggerKey
)

func principalFrom(r *http.Request) auth.Principal {
	p, _ := r.Context().Value(principalKey).(auth.Principal)
	return p
}

func loggerFrom(r *http.Request) *slog.Logger {
	l, _ := r.Context().Value(loggerKey).(*slog.Logger)
	return l
}

// limitBody bounds request bodies; reading past the limit yields 413.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.cfg.MaxBody {
			writeError(w, r, brownout.Errorf(brownout.ETOOLARGE, "request body is larger than %d bytes", s.cfg.MaxBody))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
		next.ServeHTTP(w, r)
	})
}

// realClient puts the real client address into r.RemoteAddr when the peer
// is a trusted proxy, so that every throttle and cap below (the API's,
// the dashboard's) keys on the client, and caps the client's concurrent
// requests, since the listener's per-address cap cannot see behind the
// proxy. From any other peer the headers are ignored.
func (s *Server) realClient(next http.Handler) http.Handler {
	if s.cfg.Proxies.Empty() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.cfg.Proxies.Trusted(r.RemoteAddr) {
			next.ServeHTTP(w, r)
			return
		}
		ip := s.cfg.Proxies.ClientIP(r)
		release, err := s.proxied.Acquire(ip, false)
		if err != nil {
			s.metrics.ConnsRefused.WithLabelValues("per_addr").Inc()
			w.Header().Set("Retry-After", "5")
			writeError(w, r, brownout.Errorf(brownout.ETHROTTLED, "too many concurrent requests from this address (the most is %d, --max-conns-per-addr)", s.cfg.MaxRequestsPerAddr))
			return
		}
		defer release()
		r2 := r.Clone(r.Context())
		r2.RemoteAddr = net.JoinHostPort(ip, "0")
		next.ServeHTTP(w, r2)
	})
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authenticate resolves the bearer token. A client address that keeps
// presenting bad tokens is answered 429 instead of 401 until it slows
// down; valid tokens always pass, so a noisy neighbour on the same address
// cannot lock out a well-behaved client.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret := ""
		if h := r.Header.Get("Authorization"); h != "" {
			const prefix = "bearer "
			if len(h) > len(prefix) && strings.EqualFold(h[:len(prefix)], prefix) {
				secret = strings.TrimSpace(h[len(prefix):])
			} else {
				s.metrics.AuthFailures.Inc()
				writeError(w, r, brownout.Errorf(brownout.EUNAUTHORIZED, "the Authorization header must be \"Bearer TOKEN\""))
				return
			}
		}
		p, err := s.auth.Authenticate(secret)
		if err != nil && secret == "" {
			// No credential at all is not a guess: no throttling.
			s.metrics.AuthFailures.Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="brownout"`)
			writeError(w, r, err)
			return
		}
		if err != nil {
			addr := clientAddr(r)
			s.metrics.AuthFailures.Inc()
			if blocked, wait := s.throttle.Blocked(addr); blocked {
				w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
				writeError(w, r, brownout.Errorf(brownout.ETHROTTLED, "too many failed authentications from this address; retry later"))
				return
			}
			s.throttle.Fail(addr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="brownout"`)
			writeError(w, r, err)
			return
		}
		ctx := context.WithValue(r.Context(), principalKey, p)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

type check func(auth.Principal) bool

func canRead(p auth.Principal) bool { return p.CanRead() }
func isAdmin(p auth.Principal) bool { return p.IsAdmin() }

// require refuses principals that fail the check with 403.
func (s *Server) require(ok check) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := principalFrom(r)
			if !ok(p) {
				writeError(w, r, brownout.Errorf(brownout.EFORBIDDEN, "a %s token may not %s %s", p.Scope, r.Method, r.URL.Path))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// recoverer turns a panic into a 500 without details, and logs it.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				s.metrics.Panics.Inc()
				writeJSON(w, http.StatusInternalServerError, errorBody{Error: errorDetail{Code: brownout.EINTERNAL, Message: "internal error"}})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
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

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// instrument counts requests by route pattern and status, and logs
// server errors.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx := context.WithValue(r.Context(), loggerKey, s.log)
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(ctx))
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		if strings.HasPrefix(route, "/api/") || route == "/metrics" || route == "/readyz" {
			s.metrics.HTTPRequests.WithLabelValues(r.Method, route, strconv.Itoa(rec.status)).Inc()
			s.metrics.HTTPDuration.WithLabelValues(r.Method, route).Observe(time.Since(start).Seconds())
		}
	})
}

// Hijack lets the websocket upgrade through the recorder.
func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("response writer cannot hijack")
	}
	if s.status == 0 {
		s.status = http.StatusSwitchingProtocols
	}
	return hj.Hijack()
}

// Flush forwards to the underlying writer when it can flush.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
