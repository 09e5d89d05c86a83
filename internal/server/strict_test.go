package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/brownout-io/brownout/internal/servertest"
)

// TestStrictJSONEveryEndpoint guards against bodies that mean different
// things to different parsers: a key given twice, or beside a variant
// that differs only in case, is a 400 naming the key on every endpoint
// that takes JSON, and nothing changes.
func TestStrictJSONEveryEndpoint(t *testing.T) {
	s := servertest.Start(t)
	s.MustDo(t, "POST", "/api/v1/reports", s.AdminToken, report("checkout", "c-1", 10, 10, 10, 0), 202, nil)
	time.Sleep(100 * time.Millisecond)
	before := snapshot(t, s)

	lvl := `{"level":1,"cpu":{"enter":70,"exit":60},"memory":{"enter":75,"exit":65},"error_rate":{"enter":0.05,"exit":0.03}}`
	rest := `,{"level":2,"cpu":{"enter":80,"exit":70},"memory":{"enter":85,"exit":75},"error_rate":{"enter":0.1,"exit":0.08}},{"level":3,"cpu":{"enter":90,"exit":80},"memory":{"enter":95,"exit":85},"error_rate":{"enter":0.25,"exit":0.23}}]}`
	dupCPU := strings.Replace(lvl, `"cpu":{"enter":70,"exit":60}`, `"cpu":{"enter":70,"exit":60,"EXIT":1}`, 1)
	tests := []struct {
		method, path, body, key string
	}{
		{"POST", "/api/v1/reports", `{"service":"checkout","instance":"c-1","cpu_percent":1,"memory_percent":1,"cpu_percent":99}`, "cpu_percent"},
		{"POST", "/api/v1/reports", `[{"service":"checkout","instance":"c-1","cpu_percent":1,"memory_percent":1,"CPU_PERCENT":99}]`, "0.CPU_PERCENT"},
		{"PUT", "/api/v1/thresholds", `{"cooldown":"60s","Cooldown":"1s","levels":[` + lvl + rest, "Cooldown"},
		{"PUT", "/api/v1/services/checkout/thresholds", `{"cooldown":"60s","levels":[` + dupCPU + rest, "levels.0.cpu.EXIT"},
		{"PUT", "/api/v1/flags", `{"levels":[{"level":0,"flags":{"analytics":true,"analytics":false}}]}`, "levels.0.flags.analytics"},
		{"PUT", "/api/v1/services/checkout/flags", `{"levels":[{"level":0,"Level":3,"flags":{}}]}`, "levels.0.Level"},
		{"POST", "/api/v1/overrides", `{"service":"checkout","level":0,"LEVEL":3,"reason":"x"}`, "LEVEL"},
		{"POST", "/api/v1/emergency", `{"reason":"a","reason":"b"}`, "reason"},
		{"POST", "/api/v1/tokens", `{"scope":"viewer","Scope":"admin","name":"x"}`, "Scope"},
	}
	for _, tt := range tests {
		st, body := s.Do(t, tt.method, tt.path, s.AdminToken, tt.body)
		var e struct {
			Error struct{ Code, Message, Field string } `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		if st != 400 || e.Error.Field != tt.key || !strings.Contains(e.Error.Message, "key") {
			t.Errorf("%s %s %s: %d %s, want 400 naming key %q", tt.method, tt.path, tt.body, st, body, tt.key)
		}
	}
	if after := snapshot(t, s); after != before {
		t.Errorf("refused bodies changed state:\nbefore %s\nafter  %s", before, after)
	}

	// The same on the websocket.
	sub := mustDial(t, s, s.AdminToken, "checkout", "c-9")
	if _, err := sub.next(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, frame := range []string{
		`{"type":"report","cpu_percent":1,"memory_percent":1,"cpu_percent":99}`,
		`{"type":"ack","version":1,"Version":2}`,
		`{"type":"report","TYPE":"ack","cpu_percent":1,"memory_percent":1}`,
	} {
		if err := sub.c.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
			t.Fatal(err)
		}
		f, err := sub.next(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if f.Type != "error" || f.Code != "bad_request" || !strings.Contains(f.Message, "key") {
			t.Errorf("frame %s: got %+v, want an error frame naming the key", frame, f)
		}
	}
	var svc struct {
		Instances []struct {
			Name       string     `json:"name"`
			LastReport *time.Time `json:"last_report"`
		} `json:"instances"`
	}
	s.MustDo(t, "GET", "/api/v1/services/checkout", s.AdminToken, nil, 200, &svc)
	for _, in := range svc.Instances {
		if in.Name == "c-9" && in.LastReport != nil {
			t.Errorf("a refused websocket report was ingested")
		}
	}
}
