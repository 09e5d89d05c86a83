package web

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/brownout-io/brownout/web/pages/login"
)

// loginFormTTL is how long a login form stays valid.
const loginFormTTL = 30 * time.Minute

func (h *handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := h.principalOf(r); ok {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	h.renderLogin(w, r, http.StatusOK, "")
}

func (h *handler) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	// Reuse the nonce of an open sign-in form, so that a second tab or a
	// stray request (a favicon) does not invalidate the first form.
	nonce := ""
	if c, err := r.Cookie(loginCookie); err == nil && len(c.Value) >= 16 && len(c.Value) <= 64 && r.Method == http.MethodGet {
		nonce = c.Value
	} else {
		nonce = newNonce()
	}
	setCookie(w, r, loginCookie, nonce, loginFormTTL)
	w.Header().Set("Cache-Control", "no-store")
	next := r.URL.Query().Get("next")
	if r.Method == http.MethodPost {
		next = r.PostForm.Get("next")
	}
	h.render(w, r, status, login.Page(login.Model{CSRF: h.sign.loginToken(nonce), Next: safeNext(next), Error: msg, CSSURL: h.cssURL}))
}

func (h *handler) loginSubmit(w http.ResponseWriter, r *http.Request) {
	addr := clientAddr(r)
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		h.renderLogin(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	c, err := r.Cookie(loginCookie)
	if err != nil || !h.sign.checkLogin(c.Value, r.PostForm.Get(csrfField)) {
		h.renderLogin(w, r, http.StatusForbidden, "This sign-in form has expired. Try again.")
		return
	}
	p, err := h.d.Auth.Authenticate(strings.TrimSpace(r.PostForm.Get("token")))
	if err != nil {
		// The throttle holds back guessers only: a valid token signs in
		// whatever else came from its address, as it does on the API.
		if blocked, wait := h.throttle.Blocked(addr); blocked {
			w.Header().Set("Retry-After", itoa(int(wait/time.Second)+1))
			h.renderLogin(w, r, http.StatusTooManyRequests, "Too many failed attempts. Wait a moment and try again.")
			return
		}
		h.throttle.Fail(addr)
		h.renderLogin(w, r, http.StatusUnauthorized, "That token is not valid, or it has been revoked.")
		return
	}
	if !p.CanRead() {
		h.throttle.Fail(addr)
		h.renderLogin(w, r, http.StatusForbidden, "SDK tokens cannot open the dashboard. Use an admin or viewer token.")
		return
	}
	value, _ := h.sign.encodeSession(p.TokenID, p.SessionBinding(h.d.SessionKey), h.now().Add(SessionTTL))
	setCookie(w, r, sessionCookie, value, SessionTTL)
	setCookie(w, r, loginCookie, "", -1)
	h.log.Info("dashboard sign-in", "token_id", p.TokenID, "scope", p.Scope)
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

// logout ends the session on the server, durably, before it ends it in
// the browser: a copy of the cookie is refused from now on, and the
// session's live sockets close.
func (h *handler) logout(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	if h.d.Sessions != nil {
		if err := h.d.Sessions.EndSession(r.Context(), rc.Sess.ID, rc.Sess.Expires, h.now()); err != nil {
			h.fail(w, r, rc, err)
			return
		}
	}
	h.hub.closeSession(rc.Sess.ID)
	setCookie(w, r, sessionCookie, "", -1)
	h.log.Info("dashboard sign-out", "token_id", rc.P.TokenID)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// maxRedirect bounds a redirect target taken from a request.
const maxRedirect = 2048

// safeNext keeps redirects after sign-in, and after forms that say where
// to go back to, on this site: next when localPath accepts it (and it is
// not the sign-in page itself), else "/".
func safeNext(next string) string {
	if !localPath(next) || next == "/login" || strings.HasPrefix(next, "/login?") || strings.HasPrefix(next, "/login/") {
		return "/"
	}
	return next
}

// localPath reports whether p is a path on this origin, read the same way
// by every browser and by proxies that decode it: it begins with exactly
// one "/", holds only printable ASCII without spaces or backslashes
// (browsers drop tabs and newlines and read "\" as "/", which turns
// "/\t/evil.example" into "//evil.example"), has no scheme or host, and
// its decoded path neither begins with "//" nor holds a backslash or a
// control character (no "/%2F/evil.example", no "/%5Cevil.example").
func localPath(p string) bool {
	if len(p) == 0 || len(p) > maxRedirect || p[0] != '/' {
		return false
	}
	if len(p) > 1 && (p[1] == '/' || p[1] == '\\') {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return false
		}
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	if strings.HasPrefix(u.Path, "//") {
		return false
	}
	for i := 0; i < len(u.Path); i++ {
		if c := u.Path[i]; c < ' ' || c == 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
