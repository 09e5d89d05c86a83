package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/brownout-io/brownout/internal/servertest"
)

type auditList struct {
	Items []struct {
		Actor   string `json:"actor"`
		ActorID string `json:"actor_id"`
		Action  string `json:"action"`
		Target  string `json:"target"`
	} `json:"items"`
}

// Finding "an honest audit trail": the audit actor was a token's name
// only, and names are free text, so two tokens named alike could not be
// told apart. Every entry carries the acting token's id too.
func TestAuditRecordsTheActingTokensID(t *testing.T) {
	s := servertest.Start(t)
	var tok struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	s.MustDo(t, http.MethodPost, "/api/v1/tokens", s.AdminToken, map[string]string{"scope": "admin", "name": "alice"}, http.StatusCreated, &tok)
	var twin struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	s.MustDo(t, http.MethodPost, "/api/v1/tokens", s.AdminToken, map[string]string{"scope": "admin", "name": "alice"}, http.StatusCreated, &twin)
	s.MustDo(t, http.MethodPost, "/api/v1/overrides", tok.Token, map[string]any{"service": "cart", "level": 2, "reason": "first alice"}, http.StatusCreated, nil)
	s.MustDo(t, http.MethodPost, "/api/v1/overrides", twin.Token, map[string]any{"service": "cart", "level": 1, "reason": "second alice"}, http.StatusCreated, nil)

	var got auditList
	s.MustDo(t, http.MethodGet, "/api/v1/audit", s.AdminToken, nil, http.StatusOK, &got)
	seen := map[string]string{} // action by actor id
	for _, e := range got.Items {
		if e.ActorID == "" {
			t.Errorf("audit entry %s on %s by %q has no actor_id", e.Action, e.Target, e.Actor)
		}
		if e.Action == "token.create" && (e.Actor != "admin" || e.ActorID != "admin") {
			t.Errorf("token.create by %q (%q), want the bootstrap admin token (admin, admin)", e.Actor, e.ActorID)
		}
		if e.Action == "override.create" {
			if e.Actor != "alice" {
				t.Errorf("override.create actor %q, want alice", e.Actor)
			}
			seen[e.ActorID] = e.Action
		}
	}
	if seen[tok.ID] == "" || seen[twin.ID] == "" {
		t.Errorf("override.create entries by actor id: %v; want one by %s and one by %s", seen, tok.ID, twin.ID)
	}
}

// Finding "names that impersonate the controller": a new token could be
// named "system" or "admin", the actors the controller itself writes in
// the audit log.
func TestTokenNamesOfTheControllerItselfAreRefused(t *testing.T) {
	s := servertest.Start(t)
	for _, name := range []string{"system", "admin", " System ", "ADMIN", "\tadmin\n", "SyStEm"} {
		st, body := s.Do(t, http.MethodPost, "/api/v1/tokens", s.AdminToken, map[string]string{"scope": "admin", "name": name})
		var e struct {
			Error struct {
				Code, Message, Field string
			} `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		if st != http.StatusUnprocessableEntity || e.Error.Field != "name" || !strings.Contains(e.Error.Message, "reserved") {
			t.Errorf("token named %q: %d %s; want 422 on name saying it is reserved", name, st, body)
		}
	}
	// Names that only contain them are fine.
	s.MustDo(t, http.MethodPost, "/api/v1/tokens", s.AdminToken, map[string]string{"scope": "viewer", "name": "admin-laptop"}, http.StatusCreated, nil)
}
