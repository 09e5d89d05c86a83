// Package web is the operator dashboard: server-rendered templ pages, a
// signed session cookie opened with an admin or viewer token, CSRF tokens
// on every form, and one live websocket per page through which the server
// pushes HTML fragments that it rendered once per change for everyone.
//
// Layout: web (handlers, one file per page, sessions, the live hub),
// web/ui (layout and shared components), web/pages/NAME (one folder per
// page: its .templ, the generated _templ.go and its view model), web/static
// (CSS and the page script, embedded).
package web

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/auth"
	"github.com/brownout-io/brownout/internal/controller"
	"github.com/brownout-io/brownout/internal/notify"
	"github.com/brownout-io/brownout/web/pages/errpage"
	"github.com/brownout-io/brownout/web/ui"
)

// History is what the dashboard reads of the past.
type History interface {
	ListAudit(ctx context.Context, f brownout.Filter) (brownout.Page[brownout.AuditEntry], error)
	ListLevelChanges(ctx context.Context, f brownout.Filter) (brownout.Page[brownout.LevelChange], error)
	QuerySamples(ctx context.Context, service string, from, to time.Time, step time.Duration) ([]brownout.SamplePoint, error)
}

// TokenCloser ends the SDK subscriptions that use a token.
type TokenCloser interface {
	CloseToken(tokenID, reason string) int
}

// ReplicaSet lists the controller replicas that share the store.
type ReplicaSet interface {
	Replicas(ctx context.Context) ([]brownout.Replica, error)
}

// Deps are the dashboard's collaborators.
type Deps struct {
	// Replicas, when set, is shown on the overview: who leads, each
	// replica's subscribers and lag.
	Replicas   ReplicaSet
	Controller *controller.Controller
	// Subscribers holds the SDK subscriptions, closed when a token is
	// revoked here.
	Subscribers TokenCloser
	Auth        *auth.Authenticator
	History     History
	Log         *slog.Logger
	Now         func() time.Time
	// SessionKey signs session cookies; it persists in the data directory.
	SessionKey []byte
	// Sessions keeps signed-out sessions; without it (tests of pages
	// alone) signing out ends the session in the browser only.
	Sessions SessionStore
	// OriginPatterns are extra hosts allowed to open the live websocket.
	OriginPatterns []string
	// Notify manages webhooks and dead letters; nil hides the page.
	Notify *notify.Notifier
}

//go:embed static
var staticFS embed.FS

// maxForm bounds a dashboard form body.
const maxForm = 64 << 10

type handler struct {
	d        Deps
	sign     signer
	now      func() time.Time
	log      *slog.Logger
	hub      *hub
	sparks   *sparkCache
	throttle *auth.Throttle
	assets   map[string]asset
	cssURL   string
	jsURL    string
}

type asset struct {
	body  []byte
	ctype string
	hash  string
}

// New returns the dashboard's handler. It starts no goroutine of its own:
// the live hub runs only while a dashboard page is connected.
func New(d Deps) http.Handler {
	h := newHandler(d)
	return h.routes()
}

func newHandler(d Deps) *handler {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	now := d.Now
	if now == nil {
		now = time.Now
	}
	h := &handler{
		d: d, sign: signer{key: d.SessionKey}, now: now, log: d.Log.With("component", "web"),
		throttle: auth.NewThrottle(10, 2*time.Second, now),
		assets:   map[string]asset{},
	}
	h.sparks = newSparkCache(d.History, now)
	h.hub = newHub(h)
	if d.Auth != nil {
		d.Auth.OnRevoke(h.hub.closeToken)
	}
	_ = fs.WalkDir(staticFS, "static", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, _ := staticFS.ReadFile(p)
		sum := sha256.Sum256(b)
		name := strings.TrimPrefix(p, "static/")
		ct := "application/octet-stream"
		switch {
		case strings.HasSuffix(name, ".css"):
			ct = "text/css; charset=utf-8"
		case strings.HasSuffix(name, ".js"):
			ct = "text/javascript; charset=utf-8"
		case strings.HasSuffix(name, ".svg"):
			ct = "image/svg+xml"
		case strings.HasSuffix(name, ".md"):
			return nil
		}
		h.assets[name] = asset{body: b, ctype: ct, hash: hex.EncodeToString(sum[:6])}
		return nil
	})
	h.cssURL = "/static/app.css?v=" + h.assets["app.css"].hash
	h.jsURL = "/static/app.js?v=" + h.assets["app.js"].hash
	return h
}

func (h *handler) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /static/{file}", h.static)
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/static/favicon.svg", http.StatusMovedPermanently)
	})
	mux.HandleFunc("GET /login", h.loginPage)
	mux.HandleFunc("POST /login", h.loginSubmit)
	mux.HandleFunc("POST /logout", h.action(false, h.logout))

	mux.HandleFunc("GET /{$}", h.page(h.overview))
	mux.HandleFunc("GET /services/{name}", h.page(h.servicePage))
	mux.HandleFunc("POST /services/{name}/thresholds", h.action(true, h.saveThresholds))
	mux.HandleFunc("POST /services/{name}/thresholds/reset", h.action(true, h.resetThresholds))
	mux.HandleFunc("POST /services/{name}/flags", h.action(true, h.saveFlags))
	mux.HandleFunc("POST /services/{name}/flags/reset", h.action(true, h.resetFlags))
	mux.HandleFunc("POST /services/{name}/retire", h.action(true, h.retireService))

	mux.HandleFunc("GET /overrides", h.page(h.overridesPage))
	mux.HandleFunc("POST /overrides", h.action(true, h.createOverride))
	mux.HandleFunc("POST /overrides/{id}/clear", h.action(true, h.clearOverride))
	mux.HandleFunc("POST /emergency", h.action(true, h.startEmergency))
	mux.HandleFunc("POST /emergency/end", h.action(true, h.endEmergency))

	mux.HandleFunc("GET /history", h.page(h.historyPage))
	mux.HandleFunc("GET /audit", h.page(h.auditPage))

	mux.HandleFunc("GET /tokens", h.page(h.tokensPage))
	mux.HandleFunc("POST /tokens", h.action(true, h.createToken))
	mux.HandleFunc("POST /tokens/{id}/revoke", h.action(true, h.revokeToken))

	mux.HandleFunc("GET /notifications", h.page(h.notificationsPage))
	mux.HandleFunc("POST /notifications/webhooks", h.action(true, h.createWebhook))
	mux.HandleFunc("POST /notifications/webhooks/{id}/delete", h.action(true, h.deleteWebhook))
	mux.HandleFunc("POST /notifications/deadletters/{id}/redrive", h.action(true, h.redriveDeadLetter))

	mux.HandleFunc("GET /live", h.live)
	mux.HandleFunc("/", h.page(func(w http.ResponseWriter, r *http.Request, rc reqCtx) {
		h.errorPage(w, r, rc, http.StatusNotFound, "Page not found", "There is no page at "+r.URL.Path+".")
	}))
	return securityHeaders(mux)
}

// securityHeaders allows only the dashboard's own scripts, styles and
// connections, and no framing.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

func (h *handler) static(w http.ResponseWriter, r *http.Request) {
	a, ok := h.assets[r.PathValue("file")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", a.ctype)
	if r.URL.Query().Get("v") == a.hash {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Header().Set("ETag", `"`+a.hash+`"`)
	if r.Header.Get("If-None-Match") == `"`+a.hash+`"` {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(a.body)
}

// reqCtx is the signed-in operator of a request.
type reqCtx struct {
	P    auth.Principal
	Sess session
	CSRF string
}

func (rc reqCtx) user() ui.User { return ui.User{Name: rc.P.Name, Scope: rc.P.Scope} }

// page wraps a GET handler: without a session it redirects to the login
// page, coming back afterwards.
func (h *handler) page(fn func(http.ResponseWriter, *http.Request, reqCtx)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p, sess, ok := h.principalOf(r)
		if !ok {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		fn(w, r, reqCtx{P: p, Sess: sess, CSRF: h.sign.csrf(sess)})
	}
}

// action wraps a form POST: a live session is required (401), an admin
// token when admin is set (403), and the session's CSRF token in the form
// (403).
func (h *handler) action(admin bool, fn func(http.ResponseWriter, *http.Request, reqCtx)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		p, sess, ok := h.principalOf(r)
		if !ok {
			h.plainError(w, http.StatusUnauthorized, "Your session has ended. Sign in again.")
			return
		}
		rc := reqCtx{P: p, Sess: sess, CSRF: h.sign.csrf(sess)}
		if admin && !p.IsAdmin() {
			h.errorPage(w, r, rc, http.StatusForbidden, "Not allowed", "A viewer token can look but not change anything. Sign in with an admin token to do this.")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := r.ParseForm(); err != nil {
			h.errorPage(w, r, rc, http.StatusBadRequest, "Bad form", "The form could not be read.")
			return
		}
		if !h.sign.checkCSRF(sess, r.PostForm.Get(csrfField)) {
			h.errorPage(w, r, rc, http.StatusForbidden, "Form refused", "The form's security token is missing or stale. Reload the page and try again.")
			return
		}
		fn(w, r, rc)
	}
}

func (h *handler) meta(r *http.Request, rc reqCtx, title, nav, live string) ui.Meta {
	return ui.Meta{
		Title: title, Nav: nav, User: rc.user(), CSRF: rc.CSRF, Live: live,
		Emergency: h.d.Controller.ActiveEmergency(), Flash: flashText(r.URL.Query().Get("ok")),
		CSSURL: h.cssURL, JSURL: h.jsURL, Now: h.now(),
	}
}

// render writes a component with a status.
func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	buf := templ.GetBuffer()
	defer templ.ReleaseBuffer(buf)
	if err := c.Render(r.Context(), buf); err != nil {
		h.log.Error("render page", "path", r.URL.Path, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (h *handler) errorPage(w http.ResponseWriter, r *http.Request, rc reqCtx, status int, title, msg string) {
	h.render(w, r, status, errpage.Page(h.meta(r, rc, title, "", "global"), title, msg))
}

func (h *handler) plainError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg + "\n"))
}

// fail shows err: a *brownout.Error's message as it is, anything else as a
// generic message (and logged).
func (h *handler) fail(w http.ResponseWriter, r *http.Request, rc reqCtx, err error) {
	var be *brownout.Error
	if errors.As(err, &be) {
		status := http.StatusUnprocessableEntity
		switch be.Code {
		case brownout.ENOTFOUND:
			status = http.StatusNotFound
		case brownout.EBADREQUEST:
			status = http.StatusBadRequest
		case brownout.ECONFLICT:
			status = http.StatusConflict
		}
		h.errorPage(w, r, rc, status, "Not done", be.Message)
		return
	}
	h.log.Error("dashboard action failed", "path", r.URL.Path, "err", err)
	h.errorPage(w, r, rc, http.StatusInternalServerError, "Something went wrong", "The controller could not complete this. Details are in its log.")
}

// flashes are the confirmations a redirect may ask for, by key, so that no
// text travels in URLs.
var flashes = map[string]string{
	"emergency-on":        "Emergency mode is on: every service is at L3 MAINTENANCE.",
	"emergency-off":       "Emergency mode has ended.",
	"override-created":    "Override created.",
	"service-retired":     "Service retired; its history is kept.",
	"override-cleared":    "Override cleared.",
	"thresholds-saved":    "Thresholds saved. They apply from the next evaluation.",
	"thresholds-reset":    "Thresholds reset to the global defaults.",
	"flags-saved":         "Flag sets saved and pushed.",
	"flags-reset":         "Flag sets reset to the global defaults.",
	"token-revoked":       "Token revoked; its sessions and connections are closed.",
	"webhook-deleted":     "Webhook deleted, with its pending deliveries.",
	"deadletter-redriven": "Dead letter back in the outbox; it is delivered again shortly.",
}

func flashText(key string) string { return flashes[key] }

// back returns the same-origin page a form was sent from, for redirects
// after actions that every page offers, or fallback when the Referer is
// missing, from another host, or not a path that localPath accepts.
func back(r *http.Request, fallback string) string {
	ref, err := url.Parse(r.Header.Get("Referer"))
	if err != nil || ref.Host != r.Host || ref.Path == "/login" {
		return fallback
	}
	q := ref.Query()
	q.Del("ok")
	// The escaped path: what the browser sent, not its decoded reading.
	p := ref.EscapedPath() + queryPrefix(q.Encode())
	if !localPath(p) {
		return fallback
	}
	return p
}

func queryPrefix(q string) string {
	if q == "" {
		return ""
	}
	return "?" + q
}

func withFlash(path, key string) string {
	if strings.Contains(path, "?") {
		return path + "&ok=" + key
	}
	return path + "?ok=" + key
}
