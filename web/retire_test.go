package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/app"
	"github.com/brownout-io/brownout/internal/servertest"
)

// TestRetireFromTheDashboard: admins see the retire form, viewers do not;
// it needs the confirmation box, is refused while the service reports,
// and once the service is stale it retires it.
func TestRetireFromTheDashboard(t *testing.T) {
	s := servertest.Start(t, servertest.WithConfig(func(c *app.Config) {
		c.Controller.StaleAfter = 2 * time.Second
		c.Controller.Window = 2 * time.Second
	}))
	report(t, s, "retiree", "r-1", 10, 10, 0, nil)
	admin := signIn(t, s, s.AdminToken)
	_, vs := s.Token(t, "viewer", "")
	viewer := signIn(t, s, vs)
	if _, page := admin.get("/services/retiree"); !strings.Contains(page, `action="/services/retiree/retire"`) {
		t.Fatal("admin sees no retire form")
	}
	if _, page := viewer.get("/services/retiree"); strings.Contains(page, `action="/services/retiree/retire"`) {
		t.Fatal("viewer sees the retire form")
	}
	if st, _ := viewer.post("/services/retiree/retire", url.Values{"_csrf": {viewer.csrf}, "confirm": {"yes"}}); st != http.StatusForbidden {
		t.Fatalf("viewer retire: %d, want 403", st)
	}
	if st, _ := admin.post("/services/retiree/retire", url.Values{"_csrf": {admin.csrf}}); st != http.StatusBadRequest {
		t.Fatalf("unconfirmed retire: %d, want 400", st)
	}
	report(t, s, "retiree", "r-1", 10, 10, 0, nil)
	if st, page := admin.post("/services/retiree/retire", url.Values{"_csrf": {admin.csrf}, "confirm": {"yes"}}); st != http.StatusConflict || !strings.Contains(page, "live instance") {
		t.Fatalf("retire while reporting: %d", st)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := admin.post("/services/retiree/retire", url.Values{"_csrf": {admin.csrf}, "confirm": {"yes"}})
		if st == http.StatusSeeOther {
			break
		}
		if st != http.StatusConflict || time.Now().After(deadline) {
			t.Fatalf("retire once stale: %d", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := s.App.Controller.Service("retiree"); err == nil {
		t.Fatal("service still there after retirement")
	}
	if st, _ := admin.get("/services/retiree"); st != http.StatusNotFound {
		t.Fatalf("retired service page: %d, want 404", st)
	}
}
