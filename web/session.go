package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/brownout-io/brownout/internal/auth"
)

// Cookie names.
const (
	sessionCookie = "brownout_session"
	loginCookie   = "brownout_login"
	csrfField     = "_csrf"
)

// SessionTTL is how long a dashboard session lasts before the operator
// signs in again.
const SessionTTL = 12 * time.Hour

// session is a signed cookie's content: the token it was opened with (by
// ID, never the secret), a binding to that token's secret, its own random
// ID and when it ends. On every request the token is looked up and the
// binding compared, so that revoking the token or rotating the admin
// token's secret ends the session at once; signing out records the ID as
// ended in the store, so that the cookie is dead on the server too.
type session struct {
	ID      string
	TokenID string
	Expires time.Time
	// Binding is auth.Principal.SessionBinding of the token at sign-in.
	Binding []byte
	// raw is the signed payload; the CSRF token derives from it.
	raw string
}

// SessionStore keeps the sessions ended before they expire, durably, so
// that a restart does not bring a signed-out session back.
type SessionStore interface {
	EndSession(ctx context.Context, id string, expires, now time.Time) error
	SessionEnded(ctx context.Context, id string) (bool, error)
}

// signer signs cookies and derives CSRF tokens with the persisted session
// key; each use has its own label so that one value never verifies as
// another.
type signer struct{ key []byte }

func (s signer) mac(label, payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write([]byte(payload))
	return m.Sum(nil)
}

var b64 = base64.RawURLEncoding

func (s signer) encodeSession(tokenID string, binding []byte, exp time.Time) (value string, sess session) {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	id := hex.EncodeToString(nonce[:])
	payload := tokenID + "|" + strconv.FormatInt(exp.Unix(), 10) + "|" + id + "|" + b64.EncodeToString(binding)
	p := b64.EncodeToString([]byte(payload))
	return p + "." + b64.EncodeToString(s.mac("session", payload)), session{ID: id, TokenID: tokenID, Expires: exp, Binding: binding, raw: payload}
}

func (s signer) decodeSession(value string, now time.Time) (session, bool) {
	p, sig, ok := strings.Cut(value, ".")
	if !ok || len(value) > 512 {
		return session{}, false
	}
	payload, err := b64.DecodeString(p)
	if err != nil {
		return session{}, false
	}
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac("session", string(payload))) {
		return session{}, false
	}
	parts := strings.Split(string(payload), "|")
	if len(parts) != 4 || parts[2] == "" {
		return session{}, false
	}
	unix, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return session{}, false
	}
	binding, err := b64.DecodeString(parts[3])
	if err != nil || len(binding) == 0 {
		return session{}, false
	}
	exp := time.Unix(unix, 0)
	if !now.Before(exp) {
		return session{}, false
	}
	return session{ID: parts[2], TokenID: parts[0], Expires: exp, Binding: binding, raw: string(payload)}, true
}

// csrf is the form token of a session: an HMAC of the session payload.
func (s signer) csrf(sess session) string {
	return b64.EncodeToString(s.mac("csrf", sess.raw))
}

func (s signer) checkCSRF(sess session, presented string) bool {
	got, err := b64.DecodeString(presented)
	return err == nil && presented != "" && hmac.Equal(got, s.mac("csrf", sess.raw))
}

// The login form has no session yet; it is protected by a random nonce in
// a short-lived cookie and the HMAC of that nonce in the form.
func (s signer) loginToken(nonce string) string {
	return b64.EncodeToString(s.mac("login", nonce))
}

func (s signer) checkLogin(nonce, presented string) bool {
	got, err := b64.DecodeString(presented)
	return err == nil && nonce != "" && presented != "" && hmac.Equal(got, s.mac("login", nonce))
}

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return b64.EncodeToString(b[:])
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	c := &http.Cookie{
		// Secure when the browser talks TLS, to us or to a proxy in front
		// that says so; a spoofed header only hurts the spoofer.
		Name: name, Value: value, Path: "/", HttpOnly: true,
		Secure:   r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"),
		SameSite: http.SameSiteStrictMode,
	}
	if maxAge < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, c)
}

// principalOf returns the signed-in principal of a request: a valid,
// unexpired session cookie, not signed out, whose token is still active
// with the same secret and may read.
func (h *handler) principalOf(r *http.Request) (auth.Principal, session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return auth.Principal{}, session{}, false
	}
	sess, ok := h.sign.decodeSession(c.Value, h.now())
	if !ok {
		return auth.Principal{}, session{}, false
	}
	p, ok := h.sessionPrincipal(r.Context(), sess)
	return p, sess, ok
}

// sessionPrincipal checks a decoded session against the token it was
// opened with and the ended sessions. A store that cannot answer ends
// nothing but admits no one: it fails closed.
func (h *handler) sessionPrincipal(ctx context.Context, sess session) (auth.Principal, bool) {
	if !h.now().Before(sess.Expires) {
		return auth.Principal{}, false
	}
	p, ok := h.d.Auth.Lookup(sess.TokenID)
	if !ok || !p.CanRead() || !hmac.Equal(p.SessionBinding(h.d.SessionKey), sess.Binding) {
		return auth.Principal{}, false
	}
	if h.d.Sessions != nil {
		ended, err := h.d.Sessions.SessionEnded(ctx, sess.ID)
		if err != nil {
			if ctx.Err() == nil { // a request that went away is no news
				h.log.Warn("check dashboard session", "err", err)
			}
			return auth.Principal{}, false
		}
		if ended {
			return auth.Principal{}, false
		}
	}
	return p, true
}
