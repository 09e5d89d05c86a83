package web_test

import (
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/servertest"
)

// An admin adds a webhook on the Notifications page (the secret shown
// once, the URL's path never again), a failing receiver's delivery shows
// as a dead letter with its error, and the Redrive button delivers it once
// the receiver is fixed. Viewers may not see the page.
func TestNotificationsPage(t *testing.T) {
	s := servertest.Start(t)
	var failing atomic.Bool
	failing.Store(true)
	var delivered atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "maintenance window", http.StatusServiceUnavailable)
			return
		}
		delivered.Add(1)
	}))
	t.Cleanup(recv.Close)
	c := signIn(t, s, s.AdminToken)

	st, body := c.post("/notifications/webhooks", url.Values{"_csrf": {c.csrf}, "name": {"ops"}, "url": {recv.URL + "/secret-path"}, "format": {"slack"}, "events": {"emergency.on"}})
	m := regexp.MustCompile(`id="secret" class="mono" readonly value="(whsec_[^"]+)"`).FindStringSubmatch(body)
	if st != http.StatusOK || m == nil {
		t.Fatalf("create: %d, secret shown: %v\n%s", st, m != nil, body)
	}
	_, page := c.get("/notifications")
	if strings.Contains(page, m[1]) || strings.Contains(page, "secret-path") || !strings.Contains(page, "ops") {
		t.Fatalf("the list shows the secret or the URL's path, or not the webhook")
	}
	st, body = c.post("/notifications/webhooks", url.Values{"_csrf": {c.csrf}, "name": {"x"}, "url": {"https://evil.test/"}})
	if st != http.StatusUnprocessableEntity || !strings.Contains(html.UnescapeString(body), "is not on the webhook allow-list") {
		t.Errorf("a host off the allow-list: %d", st)
	}
	_, viewer := s.Token(t, "viewer", "")
	if st, _ := signIn(t, s, viewer).get("/notifications"); st != http.StatusForbidden {
		t.Errorf("viewer: %d, want 403", st)
	}

	s.MustDo(t, http.MethodPost, "/api/v1/emergency", s.AdminToken, map[string]any{"reason": "drill"}, http.StatusCreated, nil)
	var id []string
	deadline := time.Now().Add(30 * time.Second)
	for id == nil {
		if time.Now().After(deadline) {
			t.Fatal("no dead letter on the page")
		}
		time.Sleep(50 * time.Millisecond)
		_, page = c.get("/notifications")
		id = regexp.MustCompile(`action="/notifications/deadletters/([^"]+)/redrive"`).FindStringSubmatch(page)
	}
	if !strings.Contains(page, "503") || !strings.Contains(page, "maintenance window") {
		t.Errorf("the dead letter does not show its last error")
	}
	failing.Store(false)
	if st, _ := c.post("/notifications/deadletters/"+id[1]+"/redrive", url.Values{"_csrf": {c.csrf}}); st != http.StatusSeeOther {
		t.Fatalf("redrive: %d", st)
	}
	for delivered.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the redriven delivery never arrived")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, page = c.get("/notifications?ok=deadletter-redriven"); !strings.Contains(page, "No dead letters.") || !strings.Contains(page, "back in the outbox") {
		t.Errorf("after redrive the page still lists dead letters, or no confirmation")
	}
	hook := regexp.MustCompile(`action="/notifications/webhooks/(whk_[0-9a-f]+)/delete"`).FindStringSubmatch(page)
	if hook == nil {
		t.Fatal("no delete button")
	}
	if st, _ := c.post("/notifications/webhooks/"+hook[1]+"/delete", url.Values{"_csrf": {c.csrf}}); st != http.StatusSeeOther {
		t.Fatalf("delete: %d", st)
	}
	if _, page = c.get("/notifications"); !strings.Contains(page, "No webhook yet.") {
		t.Error("the webhook is still listed after delete")
	}
}
