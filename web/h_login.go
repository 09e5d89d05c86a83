package web

import (
	"net"
	"net/http"
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
	if blocked, wait := h.throttle.Blocked(addr); blocked {
		w.Header().Set("Retry-After", itoa(int(wait/time.Second)+1))
		h.renderLogin(w, r, http.StatusTooManyRequests, "Too many failed attempts. Wait a moment and try again.")
		return
	}
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
		h.throttle.Fail(addr)
		h.renderLogin(w, r, http.StatusUnauthorized, "That token is not valid, or it has been revoked.")
		return
	}
	if !p.CanRead() {
		h.throttle.Fail(addr)
		h.renderLogin(w, r, http.StatusForbidden, "SDK tokens cannot open the dashboard. Use an admin or viewer token.")
		return
	}
	value, _ := h.sign.encodeSession(p.TokenID, h.now().Add(SessionTTL))
	setCookie(w, r, sessionCookie, value, SessionTTL)
	setCookie(w, r, loginCookie, "", -1)
	h.log.Info("dashboard sign-in", "token_id", p.TokenID, "scope", p.Scope)
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

func (h *handler) logout(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps redirects after sign-in on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.HasPrefix(next, "/login") {
		return "/"
	}
	return next
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
