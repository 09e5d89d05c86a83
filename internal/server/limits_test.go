package server_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/brownout-io/brownout/internal/health"
	"github.com/brownout-io/brownout/internal/servertest"
)

func errorOf(t *testing.T, body []byte) (code, msg, field string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message, Field string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("not an error body: %s", body)
	}
	return e.Error.Code, e.Error.Message, e.Error.Field
}

// TestLimitsAreRefusedNamingTheLimit: every bound on what a client makes
// the controller keep is a 422 that names the flag to change.
func TestLimitsAreRefusedNamingTheLimit(t *testing.T) {
	s := servertest.Start(t, servertest.WithConfig(func(c *appConfig) {
		c.Controller.MaxServices, c.Controller.MaxInstances, c.Controller.MaxOverrides = 2, 2, 2
		c.Server.ReportLimits = health.Limits{MaxComponents: 2, MaxMetrics: 2, MaxNameLen: 8}
	}))
	comp := func(n, m int, name string) map[string]any {
		cs := map[string]any{}
		for i := range n {
			ms := map[string]float64{}
			for j := range m {
				ms[fmt.Sprintf("m%d", j)] = 1
			}
			cs[fmt.Sprintf("%s%d", name, i)] = map[string]any{"kind": "breaker", "metrics": ms}
		}
		return cs
	}
	rep := func(svc, inst string, comps map[string]any) map[string]any {
		r := report(svc, inst, 1, 1, 1, 0)
		if comps != nil {
			r["components"] = comps
		}
		return r
	}
	s.MustDo(t, "POST", "/api/v1/reports", s.AdminToken, rep("a", "a-1", comp(2, 2, "c")), 202, nil)
	tests := []struct {
		name string
		body map[string]any
		flag string
	}{
		{"components per report", rep("a", "a-1", comp(3, 1, "c")), "--max-components"},
		{"metrics per component", rep("a", "a-1", comp(1, 3, "c")), "--max-metrics"},
		{"component name length", rep("a", "a-1", comp(1, 1, "longname")), "--max-component-name-len"},
	}
	for _, tt := range tests {
		st, body := s.Do(t, "POST", "/api/v1/reports", s.AdminToken, tt.body)
		code, msg, _ := errorOf(t, body)
		if st != 422 || code != "invalid" || !strings.Contains(msg, tt.flag) {
			t.Errorf("%s: %d %s, want 422 naming %s", tt.name, st, body, tt.flag)
		}
	}
	// Instances per service and services in total.
	s.MustDo(t, "POST", "/api/v1/reports", s.AdminToken, rep("a", "a-2", nil), 202, nil)
	s.MustDo(t, "GET", "/api/v1/services/a", s.AdminToken, nil, 200, nil) // folds the inbox in
	st, body := s.Do(t, "POST", "/api/v1/reports", s.AdminToken, rep("a", "a-3", nil))
	if _, msg, _ := errorOf(t, body); st != 422 || !strings.Contains(msg, "--max-instances") {
		t.Errorf("third instance: %d %s, want 422 naming --max-instances", st, body)
	}
	s.MustDo(t, "POST", "/api/v1/reports", s.AdminToken, rep("b", "b-1", nil), 202, nil)
	st, body = s.Do(t, "POST", "/api/v1/reports", s.AdminToken, rep("c", "c-1", nil))
	if _, msg, _ := errorOf(t, body); st != 422 || !strings.Contains(msg, "--max-services") {
		t.Errorf("third service: %d %s, want 422 naming --max-services", st, body)
	}
	// Active overrides; emergency mode still works at the limit.
	for i := range 2 {
		s.MustDo(t, "POST", "/api/v1/overrides", s.AdminToken, map[string]any{"service": "a", "level": 1, "reason": fmt.Sprint(i)}, 201, nil)
	}
	st, body = s.Do(t, "POST", "/api/v1/overrides", s.AdminToken, map[string]any{"service": "a", "level": 1, "reason": "third"})
	if _, msg, _ := errorOf(t, body); st != 422 || !strings.Contains(msg, "--max-overrides") {
		t.Errorf("third override: %d %s, want 422 naming --max-overrides", st, body)
	}
	s.MustDo(t, "POST", "/api/v1/emergency", s.AdminToken, map[string]any{"reason": "at the limit"}, 201, nil)
}

// TestListsCarryNoInstanceDetail: GET /services has instance counts, not
// instances; one service lists its instances without components; both
// are paginated on their own endpoints.
func TestListsCarryNoInstanceDetail(t *testing.T) {
	s := servertest.Start(t)
	for i := range 3 {
		r := report("checkout", fmt.Sprintf("c-%d", i), 1, 1, 1, 0)
		r["components"] = map[string]any{
			"db":   map[string]any{"kind": "breaker", "state": "closed", "metrics": map[string]float64{"failure_rate": 0.1}},
			"pool": map[string]any{"kind": "bulkhead", "metrics": map[string]float64{"in_use": 3}},
		}
		s.MustDo(t, "POST", "/api/v1/reports", s.AdminToken, r, 202, nil)
	}
	var raw struct {
		Items []map[string]json.RawMessage `json:"items"`
	}
	s.MustDo(t, "GET", "/api/v1/services", s.AdminToken, nil, 200, &raw)
	if len(raw.Items) != 1 {
		t.Fatalf("services: %d", len(raw.Items))
	}
	if _, ok := raw.Items[0]["instances"]; ok {
		t.Errorf("GET /services embeds instances")
	}
	if string(raw.Items[0]["instance_count"]) != "3" {
		t.Errorf("instance_count = %s, want 3", raw.Items[0]["instance_count"])
	}
	_, body := s.Do(t, "GET", "/api/v1/services/checkout", s.AdminToken, nil)
	if strings.Contains(string(body), "components") || !strings.Contains(string(body), `"c-2"`) {
		t.Errorf("GET /services/checkout should list instances without components: %s", body)
	}
	var page struct {
		Items []struct {
			Name string `json:"name"`
		} `json:"items"`
		NextCursor string `json:"next_cursor"`
	}
	s.MustDo(t, "GET", "/api/v1/services/checkout/instances?limit=2", s.AdminToken, nil, 200, &page)
	if len(page.Items) != 2 || page.Items[0].Name != "c-0" || page.NextCursor == "" {
		t.Fatalf("first page of instances: %+v", page)
	}
	cursor := page.NextCursor
	page.NextCursor = ""
	s.MustDo(t, "GET", "/api/v1/services/checkout/instances?limit=2&cursor="+cursor, s.AdminToken, nil, 200, &page)
	if len(page.Items) != 1 || page.Items[0].Name != "c-2" || page.NextCursor != "" {
		t.Fatalf("second page of instances: %+v", page)
	}
	var comps struct {
		Items []struct {
			Name, Kind, State string
			Metrics           map[string]float64
		} `json:"items"`
		NextCursor string `json:"next_cursor"`
	}
	s.MustDo(t, "GET", "/api/v1/services/checkout/instances/c-1/components?limit=1", s.AdminToken, nil, 200, &comps)
	if len(comps.Items) != 1 || comps.Items[0].Name != "db" || comps.Items[0].Kind != "breaker" || comps.Items[0].Metrics["failure_rate"] != 0.1 || comps.NextCursor == "" {
		t.Fatalf("components page: %+v", comps)
	}
	s.MustDo(t, "GET", "/api/v1/services/checkout/instances/nope/components", s.AdminToken, nil, 404, nil)
	_, other := s.Token(t, "sdk", "payments")
	s.MustDo(t, "GET", "/api/v1/services/checkout/instances", other, nil, 403, nil)
}

// TestComponentBudget: components live within a memory budget. A report
// past it still counts, without its components; replacing an instance's
// components frees what the old ones held.
func TestComponentBudget(t *testing.T) {
	comps := map[string]any{"db": map[string]any{"kind": "breaker", "metrics": map[string]float64{"failure_rate": 0.1, "open": 0}}}
	cost := int64(len("db")+len("breaker")) + 160 + int64(len("failure_rate")+48+len("open")+48)
	s := servertest.Start(t, servertest.WithConfig(func(c *appConfig) { c.Controller.MaxComponentBytes = cost + cost/2 }))
	ctl := s.App.Controller
	send := func(inst string) {
		r := report("checkout", inst, 1, 1, 1, 0)
		r["components"] = comps
		s.MustDo(t, "POST", "/api/v1/reports", s.AdminToken, r, 202, nil)
		s.MustDo(t, "GET", "/api/v1/services/checkout", s.AdminToken, nil, 200, nil) // fold the inbox in
	}
	count := func(inst string) int {
		var page struct {
			Items []json.RawMessage `json:"items"`
		}
		s.MustDo(t, "GET", "/api/v1/services/checkout/instances/"+inst+"/components", s.AdminToken, nil, 200, &page)
		return len(page.Items)
	}
	send("c-1")
	send("c-2") // does not fit
	if used, dropped := ctl.ComponentBudget(); used != cost || dropped != 1 {
		t.Fatalf("budget after two reports: used %d dropped %d, want %d and 1", used, dropped, cost)
	}
	if count("c-1") != 1 || count("c-2") != 0 {
		t.Fatalf("components: c-1 %d, c-2 %d; want 1 and 0", count("c-1"), count("c-2"))
	}
	for range 5 {
		send("c-1") // replaces its own: the budget holds one copy
	}
	if used, _ := ctl.ComponentBudget(); used != cost {
		t.Fatalf("budget after c-1 replaced its components 5 times: %d, want %d", used, cost)
	}
}
