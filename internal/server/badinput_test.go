package server_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/servertest"
)

// snapshot reads everything a bad request could corrupt.
func snapshot(t *testing.T, s *servertest.Server) string {
	t.Helper()
	var b strings.Builder
	for _, p := range []string{
		"/api/v1/thresholds", "/api/v1/flags", "/api/v1/services/checkout/thresholds",
		"/api/v1/services/checkout/flags", "/api/v1/overrides", "/api/v1/tokens",
		"/api/v1/audit?limit=1000", "/api/v1/history/levels?limit=1000",
	} {
		st, body := s.Do(t, "GET", p, s.AdminToken, nil)
		fmt.Fprintf(&b, "%s %d %s\n", p, st, body)
	}
	var svc struct {
		Version   uint64 `json:"version"`
		Level     int    `json:"level"`
		Instances []struct {
			Name string `json:"name"`
		} `json:"instances"`
	}
	s.MustDo(t, "GET", "/api/v1/services/checkout", s.AdminToken, nil, 200, &svc)
	fmt.Fprintf(&b, "service v%d level %d instances %d\n", svc.Version, svc.Level, len(svc.Instances))
	st, body := s.Do(t, "GET", "/api/v1/services", s.AdminToken, nil)
	var list struct {
		Items []struct{ Name string } `json:"items"`
	}
	_ = json.Unmarshal(body, &list)
	fmt.Fprintf(&b, "services %d %d\n", st, len(list.Items))
	return b.String()
}

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	s := servertest.Start(t, servertest.WithConfig(func(c *appConfig) { c.Server.AuthFailBurst = 1000 }))
	s.MustDo(t, "POST", "/api/v1/reports", s.AdminToken, report("checkout", "c-1", 10, 10, 10, 0), 202, nil)
	s.MustDo(t, "POST", "/api/v1/overrides", s.AdminToken, map[string]any{"service": "checkout", "level": 1, "reason": "baseline"}, 201, nil)
	time.Sleep(100 * time.Millisecond) // let a tick settle the state
	before := snapshot(t, s)

	validThresholds := `{"cooldown":"60s","levels":[{"level":1,"cpu":{"enter":70,"exit":60},"memory":{"enter":75,"exit":65},"error_rate":{"enter":0.05,"exit":0.03}},{"level":2,"cpu":{"enter":80,"exit":70},"memory":{"enter":85,"exit":75},"error_rate":{"enter":0.1,"exit":0.08}},{"level":3,"cpu":{"enter":90,"exit":80},"memory":{"enter":95,"exit":85},"error_rate":{"enter":0.25,"exit":0.23}}]}`
	goodReport := `{"service":"checkout","instance":"c-2","cpu_percent":1,"memory_percent":1}`
	future := time.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339)
	huge := `{"service":"checkout","instance":"c-2","cpu_percent":1,"memory_percent":1,"pad":"` + strings.Repeat("x", 1<<20) + `"}`
	batch := "[" + strings.Repeat(goodReport+",", 1000) + goodReport + "]"

	tests := []struct {
		name, method, path, body string
		status                   int
		msg                      string // part of the message
	}{
		{"malformed json", "POST", "/api/v1/reports", `{"service":`, 400, "malformed"},
		{"unknown field", "POST", "/api/v1/reports", `{"service":"checkout","instance":"c-2","cpu":1}`, 400, "cpu"},
		{"wrong type", "POST", "/api/v1/reports", `{"service":"checkout","instance":"c-2","cpu_percent":"hot","memory_percent":1}`, 400, "cpu_percent"},
		{"cpu over 100", "POST", "/api/v1/reports", `{"service":"checkout","instance":"c-2","cpu_percent":101,"memory_percent":1}`, 422, "cpu_percent"},
		{"errors over requests", "POST", "/api/v1/reports", `{"service":"checkout","instance":"c-2","cpu_percent":1,"memory_percent":1,"requests":1,"errors":2}`, 422, "errors"},
		{"negative count", "POST", "/api/v1/reports", `{"service":"checkout","instance":"c-2","cpu_percent":1,"memory_percent":1,"requests":-5}`, 422, "requests"},
		{"invalid service name", "POST", "/api/v1/reports", `{"service":"Check Out","instance":"c-2","cpu_percent":1,"memory_percent":1}`, 400, "[a-z0-9]"},
		{"future timestamp", "POST", "/api/v1/reports", `{"service":"checkout","instance":"c-2","cpu_percent":1,"memory_percent":1,"at":"` + future + `"}`, 422, "future"},
		{"batch too large", "POST", "/api/v1/reports", batch, 413, "1000"},
		{"body over 1 MiB", "POST", "/api/v1/reports", huge, 413, "larger"},
		{"empty body", "POST", "/api/v1/reports", ``, 400, "empty"},
		{"one bad report spoils the batch", "POST", "/api/v1/reports", "[" + goodReport + `,{"service":"checkout","instance":"c-3","cpu_percent":1,"memory_percent":900}]`, 422, "report 1"},
		{"thresholds exit above enter", "PUT", "/api/v1/thresholds", strings.Replace(validThresholds, `"exit":60`, `"exit":75`, 1), 422, "levels[0].cpu.exit"},
		{"thresholds not monotonic", "PUT", "/api/v1/thresholds", strings.Replace(validThresholds, `"enter":80,"exit":70`, `"enter":65,"exit":55`, 1), 422, "levels[1].cpu"},
		{"thresholds bad cooldown", "PUT", "/api/v1/thresholds", strings.Replace(validThresholds, `"60s"`, `"soon"`, 1), 400, "duration"},
		{"thresholds unknown field", "PUT", "/api/v1/services/checkout/thresholds", strings.Replace(validThresholds, `"cooldown"`, `"cooldwn"`, 1), 400, "cooldwn"},
		{"thresholds wrong content type", "PUT", "/api/v1/thresholds", validThresholds, 415, "Content-Type"},
		{"service thresholds bad name", "PUT", "/api/v1/services/BAD/thresholds", validThresholds, 400, "service"},
		{"flags missing level", "PUT", "/api/v1/flags", `{"levels":[{"level":0,"flags":{"a":true}}]}`, 422, "level 1 is missing"},
		{"flags bad name", "PUT", "/api/v1/services/checkout/flags", `{"levels":[{"level":0,"flags":{"Not OK":true}}]}`, 422, "levels[0].flags"},
		{"flags level 9", "PUT", "/api/v1/services/checkout/flags", `{"levels":[{"level":9,"flags":{}}]}`, 422, "levels[0].level"},
		{"override without reason", "POST", "/api/v1/overrides", `{"service":"checkout","level":2}`, 422, "reason"},
		{"override level 7", "POST", "/api/v1/overrides", `{"service":"checkout","level":7,"reason":"r"}`, 422, "level"},
		{"override no level", "POST", "/api/v1/overrides", `{"service":"checkout","reason":"r"}`, 422, "level"},
		{"override bad ttl", "POST", "/api/v1/overrides", `{"service":"checkout","level":1,"reason":"r","ttl":"forever"}`, 422, "ttl"},
		{"override ttl too long", "POST", "/api/v1/overrides", `{"service":"checkout","level":1,"reason":"r","ttl":"9000h"}`, 422, "ttl"},
		{"override bad service", "POST", "/api/v1/overrides", `{"service":"Checkout","level":1,"reason":"r"}`, 400, "service"},
		{"override reason too long", "POST", "/api/v1/overrides", `{"service":"checkout","level":1,"reason":"` + strings.Repeat("r", 501) + `"}`, 422, "reason"},
		{"emergency without reason", "POST", "/api/v1/emergency", `{}`, 422, "reason"},
		{"end emergency when none", "DELETE", "/api/v1/emergency", ``, 404, "not active"},
		{"clear unknown override", "DELETE", "/api/v1/overrides/ovr_nope", ``, 404, "ovr_nope"},
		{"token bad scope", "POST", "/api/v1/tokens", `{"scope":"root","name":"x"}`, 422, "scope"},
		{"sdk token without service", "POST", "/api/v1/tokens", `{"scope":"sdk","name":"x"}`, 422, "service"},
		{"token without name", "POST", "/api/v1/tokens", `{"scope":"viewer"}`, 422, "name"},
		{"revoke unknown token", "DELETE", "/api/v1/tokens/tok_nope", ``, 404, ""},
		{"history limit 0", "GET", "/api/v1/history/levels?limit=0", ``, 400, "limit"},
		{"history limit 1001", "GET", "/api/v1/history/levels?limit=1001", ``, 400, "limit"},
		{"history bad from", "GET", "/api/v1/history/levels?from=yesterday", ``, 400, "from"},
		{"history from after to", "GET", "/api/v1/history/levels?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", ``, 400, "from"},
		{"history bad cursor", "GET", "/api/v1/history/levels?cursor=%21%21", ``, 400, "cursor"},
		{"history forged cursor", "GET", "/api/v1/history/levels?cursor=Zm9vYmFy", ``, 400, "cursor"},
		{"history unknown param", "GET", "/api/v1/history/levels?servcie=checkout", ``, 400, "servcie"},
		{"audit bad service", "GET", "/api/v1/audit?service=A%20B", ``, 400, "service"},
		{"samples no service", "GET", "/api/v1/history/samples", ``, 400, "service"},
		{"samples tiny step", "GET", "/api/v1/history/samples?service=checkout&step=1ms", ``, 400, "step"},
		{"samples too many points", "GET", "/api/v1/history/samples?service=checkout&from=2026-01-01T00:00:00Z&to=2026-01-20T00:00:00Z&step=1s", ``, 400, "step"},
		{"subscribe without instance", "GET", "/api/v1/subscribe?service=checkout", ``, 400, "instance"},
		{"subscribe bad version", "GET", "/api/v1/subscribe?service=checkout&instance=i&version=-1", ``, 400, "version"},
		{"unknown endpoint", "GET", "/api/v1/nope", ``, 404, "no such endpoint"},
		{"method not allowed", "PATCH", "/api/v1/thresholds", `{}`, 405, "PATCH"},
		{"unknown service", "GET", "/api/v1/services/ghost", ``, 404, "ghost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := any(nil)
			if tt.body != "" {
				body = []byte(tt.body)
			}
			var st int
			var out []byte
			if tt.name == "thresholds wrong content type" {
				st, out = doWithContentType(t, s, tt.method, tt.path, tt.body, "text/plain")
			} else {
				st, out = s.Do(t, tt.method, tt.path, s.AdminToken, body)
			}
			if st != tt.status {
				t.Fatalf("status %d, want %d; body %.300s", st, tt.status, out)
			}
			var e struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(out, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("not an error body: %.300s", out)
			}
			if !strings.Contains(e.Error.Message, tt.msg) {
				t.Fatalf("message %q does not mention %q", e.Error.Message, tt.msg)
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	if after := snapshot(t, s); after != before {
		t.Fatalf("bad input changed stored state:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
