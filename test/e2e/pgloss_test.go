package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/storage/postgres/pgtest"
)

// TestDatabaseLossAnswers503 runs a replica on PostgreSQL through a proxy
// and takes the database away: writes answer 503 "unavailable" (never a
// 500) in bounded time, /readyz says not ready, nothing half-written
// remains, and once the database is back the replica recovers on its own,
// without a restart.
func TestDatabaseLossAnswers503(t *testing.T) {
	p, dsn := pgtest.NewProxy(t, pgtest.NewDatabase(t))
	ctl := startController(t, "--data", dsn, "--replica-id", "solo", "--lease-ttl", "1s", "--drain", "0s")
	api := newClient(ctl.url(), adminToken)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	override := func(reason string) (int, []byte) {
		st, body, err := api.do(ctx, http.MethodPost, "/api/v1/overrides",
			map[string]any{"service": "checkout", "level": 2, "reason": reason})
		if err != nil {
			t.Fatalf("POST /overrides (%s): %v", reason, err)
		}
		return st, body
	}
	if st, body := override("before"); st != http.StatusCreated {
		t.Fatalf("before the loss: %d %s", st, body)
	}

	p.Cut()
	start := time.Now()
	st, body := override("during")
	if st != http.StatusServiceUnavailable {
		t.Fatalf("during the loss: status %d, want 503: %s", st, body)
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != "unavailable" {
		t.Fatalf("during the loss: body %s, want error code unavailable", body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the refused write took %s", d)
	}
	waitReady(t, ctl, http.StatusServiceUnavailable)

	p.Restore()
	waitReady(t, ctl, http.StatusOK)
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, body := override("after")
		if st == http.StatusCreated {
			break
		}
		if st != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("after the database came back: %d %s", st, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var list struct {
		Items []struct {
			Reason string `json:"reason"`
		} `json:"items"`
	}
	api.must(t, http.MethodGet, "/api/v1/overrides", nil, http.StatusOK, &list)
	var reasons []string
	for _, o := range list.Items {
		reasons = append(reasons, o.Reason)
	}
	if len(reasons) != 2 || reasons[0] == "during" || reasons[1] == "during" {
		t.Fatalf("overrides after the loss: %v, want before and after only", reasons)
	}
}
