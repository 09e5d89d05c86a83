package web_test

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/brownout-io/brownout/internal/servertest"
)

// offOrigin lists redirect targets that a browser would follow to another
// origin, or that are not plain paths of this site.
var offOrigin = []string{
	"/\t/evil.example",
	"/\n/evil.example",
	"/\r/evil.example",
	"/\x00/evil.example",
	"/\x7f/evil.example",
	"//evil.example",
	"///evil.example",
	"/\\evil.example",
	"\\/evil.example",
	"/\\/evil.example",
	"/a\\..\\..\\/evil.example",
	"https://evil.example/",
	"http:evil.example",
	"javascript:alert(1)",
	" /evil",
	"evil.example",
	"/%2F%2Fevil.example",
	"/%2f/evil.example",
	"/%5Cevil.example",
	"/%09/evil.example",
	"/\u3000/evil.example",
}

// locationIsLocal fails unless a redirect's Location is a path on this
// origin as a browser reads it.
func locationIsLocal(t *testing.T, what, loc string) {
	t.Helper()
	u, err := url.Parse(loc)
	bad := err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(loc, "/") ||
		strings.HasPrefix(loc, "//") || strings.ContainsAny(loc, "\\") || strings.HasPrefix(u.Path, "//")
	for _, c := range []byte(loc) {
		if c < 0x21 || c >= 0x7f {
			bad = true
		}
	}
	if bad {
		t.Errorf("%s: Location %q leaves this origin", what, loc)
	}
}

// raw sends req with c's cookies and no redirect handling at all: the
// standard client refuses to parse a Location with control characters,
// but browsers follow it.
func (c *client) raw(req *http.Request) *http.Response {
	c.tb.Helper()
	for _, ck := range c.http.Jar.Cookies(req.URL) {
		req.AddCookie(ck)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		c.tb.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	resp.Body.Close()
	c.http.Jar.SetCookies(req.URL, resp.Cookies())
	return resp
}

func postReq(u string, form url.Values) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

func noFollow(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Finding "redirects stay on this origin": /login?next=/%09/evil.example
// answered Location: /\t/evil.example, which browsers follow to another
// origin; so did a Referer with an encoded tab or backslash.
func TestRedirectsStayOnThisOrigin(t *testing.T) {
	s := servertest.Start(t)
	c := signIn(t, s, s.AdminToken)
	for _, next := range offOrigin {
		// Signed in, the sign-in page sends the operator on to next.
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/login?next="+url.QueryEscape(next), nil)
		resp := c.raw(req)
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("GET /login?next=%q: status %d, want 303", next, resp.StatusCode)
		}
		locationIsLocal(t, "GET /login?next="+url.QueryEscape(next), resp.Header.Get("Location"))

		// The override form's back field.
		form := url.Values{"_csrf": {c.csrf}, "service": {"shop"}, "level": {"1"}, "reason": {"r"}, "ttl": {"1m"}, "back": {next}}
		resp = c.raw(postReq(s.URL+"/overrides", form))
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("POST /overrides back=%q: status %d, want 303", next, resp.StatusCode)
		}
		locationIsLocal(t, "POST /overrides back="+url.QueryEscape(next), resp.Header.Get("Location"))
	}

	// The Referer of emergency mode's buttons, as a raw request line would
	// carry it: percent-encoded tricks that decode to a tab or a backslash.
	for _, ref := range []string{"/%09/evil.example", "/%5Cevil.example", "/%2F%2Fevil.example", "/%0a/evil.example", "/%5C%5Cevil.example"} {
		for _, path := range []string{"/emergency", "/emergency/end"} {
			req := postReq(s.URL+path, url.Values{"_csrf": {c.csrf}, "reason": {"drill"}, "confirm": {"yes"}})
			req.Header.Set("Referer", s.URL+ref)
			resp := c.raw(req)
			if resp.StatusCode != http.StatusSeeOther {
				t.Errorf("POST %s with Referer %s: status %d, want 303", path, ref, resp.StatusCode)
			}
			locationIsLocal(t, "POST "+path+" Referer "+ref, resp.Header.Get("Location"))
		}
	}

	// Signing in with a hostile next lands on this site.
	jar, _ := cookiejar.New(nil)
	fresh := &client{tb: t, base: s.URL, http: noFollow(jar)}
	for _, next := range offOrigin[:6] {
		_, body := fresh.get("/login?next=" + url.QueryEscape(next))
		m := formCSRF.FindStringSubmatch(body)
		if m == nil {
			t.Fatal("no CSRF field on the sign-in page")
		}
		resp := fresh.raw(postReq(s.URL+"/login", url.Values{"_csrf": {m[1]}, "token": {s.AdminToken}, "next": {next}}))
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("POST /login next=%q: status %d, want 303", next, resp.StatusCode)
		}
		locationIsLocal(t, "POST /login next="+url.QueryEscape(next), resp.Header.Get("Location"))
		// Sign out again, so that the next round shows the form.
		fresh.csrf = signedInCSRF(t, fresh)
		fresh.post("/logout", url.Values{"_csrf": {fresh.csrf}})
	}
}

// signedInCSRF reads the CSRF token of the signed-in overview.
func signedInCSRF(t *testing.T, c *client) string {
	t.Helper()
	st, body := c.get("/")
	m := metaCSRF.FindStringSubmatch(body)
	if st != http.StatusOK || m == nil {
		t.Fatalf("overview: status %d, no CSRF token", st)
	}
	return m[1]
}

// Finding "throttles never lock out a valid token": after a burst of bad
// sign-ins from one address, the dashboard answered 429 to the admin token
// too. The API lets valid tokens through; so must the sign-in form.
func TestSignInThrottleNeverLocksOutAValidToken(t *testing.T) {
	s := servertest.Start(t)
	jar, _ := cookiejar.New(nil)
	c := &client{tb: t, base: s.URL, http: noFollow(jar)}
	_, body := c.get("/login")
	csrf := formCSRF.FindStringSubmatch(body)[1]
	throttled := false
	for i := range 30 {
		st, body := c.post("/login", url.Values{"_csrf": {csrf}, "token": {"bo_wrong-guess-" + string(rune('a'+i))}})
		// Each answer carries a fresh sign-in form.
		if m := formCSRF.FindStringSubmatch(body); m != nil {
			csrf = m[1]
		}
		switch st {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			throttled = true
		default:
			t.Fatalf("bad sign-in %d: status %d, want 401 or 429", i, st)
		}
	}
	if !throttled {
		t.Fatal("30 bad sign-ins in a row were never throttled")
	}
	st, _ := c.post("/login", url.Values{"_csrf": {csrf}, "token": {s.AdminToken}, "next": {"/audit"}})
	if st != http.StatusSeeOther {
		t.Fatalf("valid admin token after a burst of bad ones: status %d, want 303", st)
	}
	if st, _ := c.get("/audit"); st != http.StatusOK {
		t.Errorf("audit page after sign-in: %d", st)
	}
	// The guesser is still throttled.
	jar2, _ := cookiejar.New(nil)
	g := &client{tb: t, base: s.URL, http: noFollow(jar2)}
	_, body = g.get("/login")
	if st, _ := g.post("/login", url.Values{"_csrf": {formCSRF.FindStringSubmatch(body)[1]}, "token": {"bo_another-guess"}}); st != http.StatusTooManyRequests {
		t.Errorf("bad sign-in after the burst: status %d, want 429", st)
	}
}
