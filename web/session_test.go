package web_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/brownout-io/brownout/internal/app"
	"github.com/brownout-io/brownout/internal/servertest"
)

// Finding "an API revocation closes the dashboard's live sockets at once":
// only the dashboard's own revocation closed them; after an API DELETE
// they stayed open until the periodic recheck, seconds later.
func TestAPIRevocationClosesLiveSocketsAtOnce(t *testing.T) {
	s := servertest.Start(t)
	id, secret := s.Token(t, "viewer", "")
	c := signIn(t, s, secret)
	conn, _, err := c.dialLive("overview", s.URL)
	if err != nil {
		t.Fatalf("dial live: %v", err)
	}
	defer conn.CloseNow()
	// The first fragments arrive once the connection is registered.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if _, _, err := conn.Read(ctx); err != nil {
		t.Fatalf("first live message: %v", err)
	}
	cancel()
	s.MustDo(t, http.MethodDelete, "/api/v1/tokens/"+id, s.AdminToken, nil, http.StatusOK, nil)
	revoked := time.Now()
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for {
		_, _, err := conn.Read(ctx)
		if err == nil {
			continue
		}
		if got := websocket.CloseStatus(err); got != 4401 {
			t.Fatalf("live socket not closed within 1s of the API revocation: %v (close status %d, want 4401)", err, got)
		}
		t.Logf("closed %s after the revocation", time.Since(revoked).Round(time.Millisecond))
		return
	}
}

// Finding "no socket outlives its token", for the dashboard: the session
// was checked before the upgrade and the connection registered after it,
// so a revocation in between left the live socket open. Each round races
// live upgrades of one session against the revocation of its token.
func TestRevocationRacingLiveUpgradesLeavesNoSocket(t *testing.T) {
	s := servertest.Start(t)
	const rounds, dialers = 12, 20
	for round := range rounds {
		id, secret := s.Token(t, "viewer", "")
		c := signIn(t, s, secret)
		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		open := map[*websocket.Conn]bool{}
		for range dialers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				conn, _, err := c.dialLive("global", s.URL)
				if err != nil {
					return
				}
				mu.Lock()
				open[conn] = true
				mu.Unlock()
				for {
					if _, _, err := conn.Read(context.Background()); err != nil {
						if websocket.CloseStatus(err) == 4401 {
							mu.Lock()
							delete(open, conn)
							mu.Unlock()
						}
						return
					}
				}
			}()
		}
		close(start)
		time.Sleep(time.Duration(round%4)*time.Millisecond + time.Duration(rand.IntN(2000))*time.Microsecond)
		s.MustDo(t, http.MethodDelete, "/api/v1/tokens/"+id, s.AdminToken, nil, http.StatusOK, nil)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		mu.Lock()
		n := len(open)
		for conn := range open {
			conn.CloseNow()
		}
		mu.Unlock()
		wg.Wait()
		if n != 0 {
			t.Fatalf("round %d: %d live sockets still open 5s after their token was revoked", round, n)
		}
	}
}

// sessionCookieOf returns the dashboard session cookie a client holds.
func sessionCookieOf(t *testing.T, c *client) *http.Cookie {
	t.Helper()
	u, _ := url.Parse(c.base)
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == "brownout_session" {
			return ck
		}
	}
	t.Fatal("no session cookie")
	return nil
}

// withCookie is a client that presents only the given session cookie, as
// someone holding a copy of it would.
func withCookie(t *testing.T, s *servertest.Server, ck *http.Cookie, csrf string) *client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(s.URL)
	jar.SetCookies(u, []*http.Cookie{{Name: ck.Name, Value: ck.Value, Path: "/"}})
	return &client{tb: t, base: s.URL, http: noFollow(jar), csrf: csrf}
}

// Finding "sessions follow their token": the cookie named the token id
// "admin" and nothing of its secret, so after CONTROLPLANE_ADMIN_TOKEN was
// rotated an old cookie still opened the dashboard and could create a new
// admin token.
func TestRotatedAdminTokenEndsItsSessions(t *testing.T) {
	s := servertest.Start(t)
	c := signIn(t, s, s.AdminToken)
	old := sessionCookieOf(t, c)
	s.Stop(t)
	s.RestartWith(t, servertest.WithConfig(func(cfg *app.Config) { cfg.AdminToken = "bo_rotated-admin-token-9876543210fedcba" }))

	stale := withCookie(t, s, old, c.csrf)
	if st, _ := stale.get("/"); st != http.StatusSeeOther {
		t.Errorf("overview with a cookie from before the rotation: status %d, want 303 to sign-in", st)
	}
	if st, _ := stale.post("/tokens", url.Values{"_csrf": {c.csrf}, "name": {"backdoor"}, "scope": {"admin"}}); st != http.StatusUnauthorized {
		t.Errorf("token creation with a cookie from before the rotation: status %d, want 401", st)
	}
	var list struct {
		Items []struct{ Name string } `json:"items"`
	}
	s.MustDo(t, http.MethodGet, "/api/v1/tokens", s.AdminToken, nil, http.StatusOK, &list)
	for _, tk := range list.Items {
		if tk.Name == "backdoor" {
			t.Fatal("a cookie from before the rotation created an admin token")
		}
	}
	// The new secret signs in as usual.
	signIn(t, s, s.AdminToken)
}

// Finding "log-out ends the session on the server": signing out only
// cleared the browser's cookie; a copy of it kept working for 12 hours.
// The end is durable: a restart does not bring the session back.
func TestSignOutEndsTheSessionOnTheServer(t *testing.T) {
	s := servertest.Start(t)
	_, secret := s.Token(t, "admin", "")
	c := signIn(t, s, secret)
	ck := sessionCookieOf(t, c)
	conn, _, err := c.dialLive("global", s.URL)
	if err != nil {
		t.Fatalf("dial live: %v", err)
	}
	defer conn.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := conn.Read(ctx); err != nil {
		t.Fatalf("first live message: %v", err)
	}
	other := signIn(t, s, secret) // another session of the same token

	if st, _ := c.post("/logout", url.Values{"_csrf": {c.csrf}}); st != http.StatusSeeOther {
		t.Fatalf("sign out: status %d", st)
	}
	copyOf := withCookie(t, s, ck, c.csrf)
	if st, _ := copyOf.get("/"); st != http.StatusSeeOther {
		t.Errorf("overview with a copy of a signed-out cookie: status %d, want 303 to sign-in", st)
	}
	if st, _ := copyOf.post("/emergency", url.Values{"_csrf": {c.csrf}, "reason": {"x"}, "confirm": {"yes"}}); st != http.StatusUnauthorized {
		t.Errorf("emergency with a copy of a signed-out cookie: status %d, want 401", st)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
	defer rcancel()
	for {
		if _, _, err := conn.Read(rctx); err != nil {
			if got := websocket.CloseStatus(err); got != 4401 {
				t.Errorf("live socket of the signed-out session: %v (close status %d), want 4401 at once", err, got)
			}
			break
		}
	}
	if st, _ := other.get("/"); st != http.StatusOK {
		t.Errorf("another session of the same token after sign-out: status %d, want 200", st)
	}

	s.Stop(t)
	s.Restart(t)
	copyOf = withCookie(t, s, ck, c.csrf)
	if st, _ := copyOf.get("/"); st != http.StatusSeeOther {
		t.Errorf("after a restart, a signed-out cookie opened the overview: status %d, want 303", st)
	}
	if st, _ := other.get("/"); st != http.StatusOK {
		t.Errorf("after a restart, a live session: status %d, want 200", st)
	}
}
