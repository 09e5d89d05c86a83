package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/brownout-io/brownout/internal/servertest"
)

var (
	formCSRF = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)
	metaCSRF = regexp.MustCompile(`<meta name="csrf-token" content="([^"]*)"`)
)

// client is a signed-in dashboard user without a browser.
type client struct {
	tb   testing.TB
	base string
	http *http.Client
	csrf string
}

func signIn(tb testing.TB, s *servertest.Server, token string) *client {
	tb.Helper()
	jar, _ := cookiejar.New(nil)
	c := &client{tb: tb, base: s.URL, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	_, body := c.get("/login")
	m := formCSRF.FindStringSubmatch(body)
	if m == nil {
		tb.Fatalf("no CSRF field on the sign-in page")
	}
	st, _ := c.post("/login", url.Values{"_csrf": {m[1]}, "token": {token}, "next": {"/"}})
	if st != http.StatusSeeOther {
		tb.Fatalf("sign in: status %d", st)
	}
	st, body = c.get("/")
	if st != http.StatusOK {
		tb.Fatalf("overview after sign-in: status %d", st)
	}
	c.csrf = metaCSRF.FindStringSubmatch(body)[1]
	return c
}

func (c *client) get(path string) (int, string) {
	c.tb.Helper()
	resp, err := c.http.Get(c.base + path)
	if err != nil {
		c.tb.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c *client) post(path string, form url.Values) (int, string) {
	c.tb.Helper()
	resp, err := c.http.PostForm(c.base+path, form)
	if err != nil {
		c.tb.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c *client) dialLive(topic, origin string) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	u := "ws" + strings.TrimPrefix(c.base, "http") + "/live?topic=" + url.QueryEscape(topic)
	return websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.http, HTTPHeader: h})
}

func TestSignedOutRedirectsToSignIn(t *testing.T) {
	s := servertest.Start(t)
	c := &client{tb: t, base: s.URL, http: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	resp, err := c.http.Get(s.URL + "/services/x?range=1h")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.Header.Get("Location"), "/login?next=%2Fservices%2Fx%3Frange%3D1h"; resp.StatusCode != http.StatusSeeOther || got != want {
		t.Errorf("got %d %q, want 303 %q", resp.StatusCode, got, want)
	}
	if st, _ := c.post("/emergency", url.Values{"reason": {"x"}, "confirm": {"yes"}}); st != http.StatusUnauthorized {
		t.Errorf("POST without session: %d, want 401", st)
	}
}

func TestSDKTokenCannotSignIn(t *testing.T) {
	s := servertest.Start(t)
	_, sdk := s.Token(t, "sdk", "checkout")
	jar, _ := cookiejar.New(nil)
	c := &client{tb: t, base: s.URL, http: &http.Client{Jar: jar}}
	_, body := c.get("/login")
	st, body := c.post("/login", url.Values{"_csrf": {formCSRF.FindStringSubmatch(body)[1]}, "token": {sdk}})
	if st != http.StatusForbidden || !strings.Contains(body, "SDK tokens cannot open the dashboard") {
		t.Errorf("sdk sign-in: %d", st)
	}
}

func TestRevokedTokenEndsSession(t *testing.T) {
	s := servertest.Start(t)
	id, secret := s.Token(t, "viewer", "")
	c := signIn(t, s, secret)
	conn, _, err := c.dialLive("global", s.URL)
	if err != nil {
		t.Fatalf("dial live: %v", err)
	}
	defer conn.CloseNow()
	s.MustDo(t, http.MethodDelete, "/api/v1/tokens/"+id, s.AdminToken, nil, http.StatusOK, nil)
	if st, _ := c.get("/"); st != http.StatusSeeOther {
		t.Errorf("GET / after revoke: %d, want 303 to sign-in", st)
	}
	// The live connection ends too, within the recheck interval.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	for {
		if _, _, err := conn.Read(ctx); err != nil {
			if got := websocket.CloseStatus(err); got != 4401 {
				t.Errorf("live closed with %v (%d), want 4401", err, got)
			}
			return
		}
	}
}

func TestFormsNeedCSRFAndAdmin(t *testing.T) {
	s := servertest.Start(t)
	admin := signIn(t, s, s.AdminToken)
	_, vs := s.Token(t, "viewer", "")
	viewer := signIn(t, s, vs)
	form := url.Values{"reason": {"drill"}, "confirm": {"yes"}}

	if st, _ := admin.post("/emergency", form); st != http.StatusForbidden {
		t.Errorf("admin without CSRF token: %d, want 403", st)
	}
	form.Set("_csrf", viewer.csrf)
	if st, _ := admin.post("/emergency", form); st != http.StatusForbidden {
		t.Errorf("admin with another session's token: %d, want 403", st)
	}
	if st, _ := viewer.post("/emergency", form); st != http.StatusForbidden {
		t.Errorf("viewer with its token: %d, want 403", st)
	}
	if s.App.Controller.ActiveEmergency() != nil {
		t.Fatal("emergency started by a refused form")
	}
	form.Set("_csrf", admin.csrf)
	form.Del("confirm")
	if st, _ := admin.post("/emergency", form); st != http.StatusUnprocessableEntity {
		t.Errorf("unconfirmed: %d, want 422", st)
	}
	form.Set("confirm", "yes")
	if st, _ := admin.post("/emergency", form); st != http.StatusSeeOther {
		t.Errorf("admin with token: %d, want 303", st)
	}
	if s.App.Controller.ActiveEmergency() == nil {
		t.Fatal("emergency not started")
	}
	if st, _ := admin.post("/emergency/end", url.Values{"_csrf": {admin.csrf}}); st != http.StatusSeeOther {
		t.Errorf("end: %d", st)
	}
	if s.App.Controller.ActiveEmergency() != nil {
		t.Fatal("emergency not ended")
	}
}

func TestLiveChecksOrigin(t *testing.T) {
	s := servertest.Start(t)
	c := signIn(t, s, s.AdminToken)
	_, resp, err := c.dialLive("overview", "http://evil.example")
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: err %v, resp %v; want 403", err, resp)
	}
	anon := &client{tb: t, base: s.URL, http: http.DefaultClient}
	_, resp, err = anon.dialLive("overview", s.URL)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no session: err %v; want 401", err)
	}
}

func TestLiveFragments(t *testing.T) {
	s := servertest.Start(t)
	c := signIn(t, s, s.AdminToken)
	conn, _, err := c.dialLive("overview", s.URL)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, first, err := conn.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`id="banner"`, `id="summary"`, `id="services"`} {
		if !strings.Contains(string(first), want) {
			t.Errorf("first frame lacks %s", want)
		}
	}
	report(t, s, "newcomer", "n-1", 10, 10, 0, nil)
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("no frame with the new service: %v", err)
		}
		if strings.Contains(string(msg), `id="svc-newcomer"`) {
			if strings.Contains(string(msg), c.csrf) {
				t.Error("a shared fragment carries a session's CSRF token")
			}
			return
		}
	}
}

func TestAuditPagesAndFilters(t *testing.T) {
	s := servertest.Start(t)
	for i := range 55 {
		s.MustDo(t, http.MethodPost, "/api/v1/overrides", s.AdminToken, map[string]any{
			"service": fmt.Sprintf("svc-%d", i%3), "level": 1, "reason": "drill", "ttl": "1h",
		}, http.StatusCreated, nil)
	}
	c := signIn(t, s, s.AdminToken)
	st, body := c.get("/audit?actor=admin")
	if st != http.StatusOK {
		t.Fatalf("audit: %d", st)
	}
	if n := strings.Count(body, "<code>override.create</code>"); n != 50 {
		t.Errorf("first page: %d rows, want 50", n)
	}
	m := regexp.MustCompile(`href="(/audit\?[^"]*cursor=[^"]+)" rel="next"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no link to the next page")
	}
	next := strings.ReplaceAll(m[1], "&amp;", "&")
	if !strings.Contains(next, "actor=admin") {
		t.Errorf("next page link drops the filter: %s", next)
	}
	_, body = c.get(next)
	if n := strings.Count(body, "<code>override.create</code>"); n != 5 {
		t.Errorf("second page: %d rows, want 5", n)
	}
	if strings.Contains(body, `rel="next"`) || !strings.Contains(body, "« Newest") {
		t.Error("last page: want a link to the newest page and none to an older one")
	}
	_, body = c.get("/audit?service=svc-1")
	if n := strings.Count(body, "<code>override.create</code>"); n != 18 {
		t.Errorf("service filter: %d rows, want 18", n)
	}
	if st, body := c.get("/audit?from=yesterday"); st != http.StatusOK || !strings.Contains(body, "is not a time") {
		t.Errorf("bad time: %d", st)
	}
}

func TestServiceLiveFragments(t *testing.T) {
	s := servertest.Start(t)
	report(t, s, "checkout", "checkout-1", 10, 10, 0, nil)
	_, viewer := s.Token(t, "viewer", "")
	c := signIn(t, s, viewer)
	conn, _, err := c.dialLive("service:checkout", s.URL)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, first, err := conn.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`id="svc-status"`, `id="instances"`, `checkout-1`} {
		if !strings.Contains(string(first), want) {
			t.Errorf("first frame lacks %s", want)
		}
	}
	if strings.Contains(string(first), `action="/emergency/end"`) {
		t.Error("a viewer's banner carries a form")
	}
	report(t, s, "checkout", "checkout-2", 10, 10, 0, nil)
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("no frame with the new instance: %v", err)
		}
		if strings.Contains(string(msg), "checkout-2") {
			return
		}
	}
}

func TestTokensPage(t *testing.T) {
	s := servertest.Start(t)
	c := signIn(t, s, s.AdminToken)
	st, body := c.post("/tokens", url.Values{"_csrf": {c.csrf}, "name": {"ci viewer"}, "scope": {"viewer"}})
	m := regexp.MustCompile(`id="secret" class="mono" readonly value="(bo_[^"]+)"`).FindStringSubmatch(body)
	if st != http.StatusOK || m == nil {
		t.Fatalf("create: %d, secret shown: %v", st, m != nil)
	}
	// The new secret signs in; the list never shows it again.
	signIn(t, s, m[1])
	_, list := c.get("/tokens")
	if strings.Contains(list, m[1]) || !strings.Contains(list, "ci viewer") {
		t.Error("the list shows the secret, or not the token")
	}
	id := regexp.MustCompile(`action="/tokens/(tok_[0-9a-f]+)/revoke"`).FindStringSubmatch(list)
	if id == nil {
		t.Fatal("no revoke button")
	}
	if st, _ := c.post("/tokens/"+id[1]+"/revoke", url.Values{"_csrf": {c.csrf}}); st != http.StatusSeeOther {
		t.Errorf("revoke: %d", st)
	}
	if _, err := s.App.Auth.Authenticate(m[1]); err == nil {
		t.Error("revoked secret still authenticates")
	}
	st, body = c.post("/tokens", url.Values{"_csrf": {c.csrf}, "name": {"x"}, "scope": {"sdk"}})
	if st != http.StatusUnprocessableEntity || !strings.Contains(body, "service: is required for an sdk token") {
		t.Errorf("invalid request: %d", st)
	}
}

// The overview shows the replica set: over SQLite, this controller alone,
// leading.
func TestOverviewShowsReplicaSet(t *testing.T) {
	s := servertest.Start(t)
	c := signIn(t, s, s.AdminToken)
	st, body := c.get("/")
	if st != 200 {
		t.Fatalf("overview: %d", st)
	}
	i := strings.Index(body, `<section id="replicas"`)
	if i < 0 {
		t.Fatalf("overview has no replica set:\n%s", body)
	}
	sec := body[i:]
	sec = sec[:strings.Index(sec, "</section>")]
	if n := strings.Count(sec, "<tr"); n != 2 || !strings.Contains(sec, `<tr class="leader">`) || !strings.Contains(sec, "<strong>leader</strong>") {
		t.Fatalf("replica set: %d rows, want a header and one leader:\n%s", n, sec)
	}
}
