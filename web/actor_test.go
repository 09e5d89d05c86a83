package web_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/brownout-io/brownout/internal/servertest"
)

// Finding "an honest audit trail", on the dashboard: its actions record
// the acting token's id beside its name, and its token form refuses the
// names of the controller's own actors.
func TestDashboardAuditNamesTheTokenAndRefusesReservedNames(t *testing.T) {
	s := servertest.Start(t)
	id, secret := s.Token(t, "admin", "")
	c := signIn(t, s, secret)
	if st, _ := c.post("/emergency", url.Values{"_csrf": {c.csrf}, "reason": {"drill"}, "confirm": {"yes"}}); st != http.StatusSeeOther {
		t.Fatalf("emergency: status %d", st)
	}
	_, body := s.Do(t, http.MethodGet, "/api/v1/audit?actor="+id, s.AdminToken, nil)
	var list struct {
		Items []struct {
			Actor   string `json:"actor"`
			ActorID string `json:"actor_id"`
			Action  string `json:"action"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Action != "emergency.start" || list.Items[0].ActorID != id || list.Items[0].Actor != "test-admin" {
		t.Errorf("audit entries by actor id %s: %s; want the one emergency.start by test-admin", id, body)
	}
	if st, page := c.get("/audit"); st != http.StatusOK || !strings.Contains(page, "test-admin ("+id+")") {
		t.Errorf("audit page: status %d, the actor is not shown with its token id %s", st, id)
	}
	for _, name := range []string{"System", " admin "} {
		st, page := c.post("/tokens", url.Values{"_csrf": {c.csrf}, "name": {name}, "scope": {"viewer"}})
		if st != http.StatusUnprocessableEntity || !strings.Contains(page, "is reserved") {
			t.Errorf("dashboard token named %q: status %d; want 422 saying the name is reserved", name, st)
		}
	}
}
