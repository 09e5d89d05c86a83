package web_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/brownout-io/brownout/internal/servertest"
)

var loginNext = regexp.MustCompile(`name="next" value="([^"]*)"`)

// checkAnswer holds every dashboard answer to the same rules: never a 5xx,
// redirects only to this origin.
func checkAnswer(t *testing.T, what string, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("%s: status %d: %s", what, rec.Code, rec.Body.String())
	}
	if rec.Code >= 300 && rec.Code < 400 {
		locationIsLocal(t, what, rec.Header().Get("Location"))
	}
}

// FuzzSignIn posts arbitrary sign-in forms (raw body, token, next) with a
// valid sign-in form token. Properties: never a 5xx; redirects stay on
// this origin, and so does the next the re-rendered form carries; the
// admin token signs in whatever the rest of the form holds, throttle or
// not.
func FuzzSignIn(f *testing.F) {
	s := servertest.Start(f)
	h := s.App.Handler()
	get := httptest.NewRecorder()
	h.ServeHTTP(get, httptest.NewRequest(http.MethodGet, "/login", nil))
	m := formCSRF.FindStringSubmatch(get.Body.String())
	if m == nil {
		f.Fatal("no sign-in form")
	}
	csrf, cookies := m[1], get.Result().Cookies()

	f.Add("", servertest.AdminToken, "/services/a?range=1h", true)
	f.Add("", "bo_wrong", "/\t/evil.example", true)
	f.Add("token=x&token=y", servertest.AdminToken, "//evil.example", true)
	f.Add("%zz", "", "/%5Cevil", false)
	f.Add(strings.Repeat("a=b&", 100), "bo_"+strings.Repeat("x", 300), "/login?next=/", true)
	f.Fuzz(func(t *testing.T, raw, token, next string, withCSRF bool) {
		form := url.Values{"token": {token}, "next": {next}}
		if withCSRF {
			form.Set("_csrf", csrf)
		}
		// The fuzzed fields come first, so that Get finds them.
		body := form.Encode() + "&" + raw
		req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for _, c := range cookies {
			req.AddCookie(c)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkAnswer(t, "POST /login", rec)
		if m := loginNext.FindStringSubmatch(rec.Body.String()); m != nil {
			locationIsLocal(t, "the sign-in form's next", strings.ReplaceAll(m[1], "&amp;", "&"))
		}
		// A form that can be read (well-formed, within the 64 KiB limit)
		// with the admin token signs in.
		if _, err := url.ParseQuery(raw); err == nil && len(body) < 64<<10 && withCSRF && strings.TrimSpace(token) == servertest.AdminToken && rec.Code != http.StatusSeeOther {
			t.Fatalf("the admin token did not sign in: status %d", rec.Code)
		}
	})
}

// dashboardForms are the forms FuzzDashboardForms posts to.
var dashboardForms = []string{
	"/overrides", "/overrides/ov_nope/clear", "/emergency", "/emergency/end",
	"/services/shop/thresholds", "/services/shop/thresholds/reset",
	"/services/shop/flags", "/services/shop/flags/reset", "/tokens",
	"/notifications/webhooks", "/notifications/webhooks/whk_nope/delete", "/notifications/deadletters/evt_nope.whk_nope/redrive",
}

// FuzzDashboardForms posts arbitrary bodies, with a valid session and CSRF
// token, to every form of the dashboard. Properties: never a 5xx (bad
// input is a 4xx naming the problem); redirects stay on this origin.
func FuzzDashboardForms(f *testing.F) {
	s := servertest.Start(f)
	report(f, s, "shop", "shop-1", 10, 10, 0, nil)
	c := signIn(f, s, s.AdminToken)
	u, _ := url.Parse(s.URL)
	cookies := c.http.Jar.Cookies(u)
	h := s.App.Handler()

	for i := range dashboardForms {
		f.Add(uint8(i), "")
	}
	f.Add(uint8(0), "service=shop&level=2&reason=r&ttl=15m&back=/services/shop")
	f.Add(uint8(0), "service=*&level=9&reason=&ttl=-1s&back=//evil.example")
	f.Add(uint8(2), "reason=drill&confirm=yes&ttl=1h")
	f.Add(uint8(4), "cooldown=1m&levels[0].cpu.enter=70&levels[0].cpu.exit=80")
	f.Add(uint8(6), "flag=analytics&level0=on&level9=on&new_flag=%00")
	f.Add(uint8(8), "name=ci&scope=sdk&service=shop")
	f.Add(uint8(8), "name=%20System%20&scope=admin")
	f.Fuzz(func(t *testing.T, route uint8, body string) {
		path := dashboardForms[int(route)%len(dashboardForms)]
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body+"&_csrf="+url.QueryEscape(c.csrf)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Referer", s.URL+"/")
		for _, ck := range cookies {
			req.AddCookie(ck)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkAnswer(t, "POST "+path+" "+body, rec)
	})
}
