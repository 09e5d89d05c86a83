package sdkcontract_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/servertest"
	"github.com/brownout-io/brownout/sdk"
	"github.com/brownout-io/brownout/sdk/component"
)

// These tests run the SDK against the real controller (router, control
// loop, SQLite) in-process.

func connectTo(tb testing.TB, base, instance, token string, opts ...sdk.Option) *sdk.Client {
	tb.Helper()
	opts = append([]sdk.Option{
		sdk.WithToken(token),
		sdk.WithLogger(slog.New(slog.DiscardHandler)),
		// The test process's own CPU must not move the level under test.
		sdk.WithReportInterval(-1),
	}, opts...)
	c, err := sdk.Connect(context.Background(), base, "checkout", instance, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type serviceView struct {
	Version   uint64 `json:"version"`
	Level     int    `json:"level"`
	Instances []struct {
		Name       string     `json:"name"`
		Version    uint64     `json:"version"`
		Connected  bool       `json:"connected"`
		LastReport *time.Time `json:"last_report"`
		Components map[string]struct {
			Kind string `json:"kind"`
		} `json:"components"`
	} `json:"instances"`
}

// getService returns the controller's view of a service, empty while the
// controller does not know it.
func getService(tb testing.TB, srv *servertest.Server, name string) serviceView {
	tb.Helper()
	var v serviceView
	status, body := srv.Do(tb, http.MethodGet, "/api/v1/services/"+name, srv.AdminToken, nil)
	switch status {
	case http.StatusNotFound:
		return v
	case http.StatusOK:
		if err := json.Unmarshal(body, &v); err != nil {
			tb.Fatalf("decode service: %v", err)
		}
		return v
	}
	tb.Fatalf("GET service: status %d: %s", status, body)
	return v
}

// instanceVersion is the version the controller believes instance runs.
func instanceVersion(tb testing.TB, srv *servertest.Server, instance string) uint64 {
	tb.Helper()
	for _, in := range getService(tb, srv, "checkout").Instances {
		if in.Name == instance {
			return in.Version
		}
	}
	return 0
}

func override(tb testing.TB, srv *servertest.Server, level int) {
	tb.Helper()
	srv.MustDo(tb, http.MethodPost, "/api/v1/overrides", srv.AdminToken,
		map[string]any{"service": "checkout", "level": level, "reason": "contract test"}, http.StatusCreated, nil)
}

func TestContractLifecycle(t *testing.T) {
	srv := servertest.Start(t)
	tokenID, token := srv.Token(t, "sdk", "checkout")
	stateFile := filepath.Join(t.TempDir(), "brownout-state.json")

	// Flags arrive: the seed's level-0 set.
	c := connectTo(t, srv.URL, "checkout-1", token, sdk.WithStateFile(stateFile))
	waitFor(t, "first state", func() bool { return c.State().Source == sdk.SourceController })
	for _, flag := range []string{"real_time_data", "personalization", "analytics", "recommendations"} {
		if !c.Enabled(flag) {
			t.Errorf("flag %s off at level 0", flag)
		}
	}
	if c.Level() != sdk.LevelFull {
		t.Fatalf("level = %v", c.Level())
	}

	// An override reaches the SDK, and its ack reaches the controller.
	override(t, srv, 2)
	waitFor(t, "override applied", func() bool { return c.Level() == sdk.LevelEssential })
	st := c.State()
	if st.Enabled("real_time_data") || st.Enabled("analytics") || st.Override == nil || st.Override.Reason != "contract test" || st.Cause != "override" {
		t.Fatalf("state after override = %+v (override %+v)", st, st.Override)
	}
	waitFor(t, "ack seen by the controller", func() bool { return instanceVersion(t, srv, "checkout-1") == st.Version })
	if got := getService(t, srv, "checkout").Version; got != st.Version {
		t.Fatalf("controller version %d, SDK version %d", got, st.Version)
	}

	// The controller goes away: the SDK keeps serving, and has persisted.
	srv.Stop(t)
	waitFor(t, "disconnect", func() bool { return !c.Stats().Connected })
	if got := c.State(); got.Level != sdk.LevelEssential || got.Version != st.Version {
		t.Fatalf("state during outage = %+v", got)
	}
	if _, err := os.Stat(stateFile); err != nil {
		t.Fatalf("state file: %v", err)
	}

	// A process started during the outage serves the persisted state.
	fresh := connectTo(t, srv.URL, "checkout-2", token, sdk.WithStateFile(stateFile))
	if got := fresh.State(); got.Source != sdk.SourceFile || got.Level != sdk.LevelEssential || got.Version != st.Version || got.Enabled("analytics") {
		t.Fatalf("fresh client during outage = %+v", got)
	}

	// The controller comes back: both resync, confirm the version they hold
	// and follow the next change.
	srv.Restart(t)
	waitFor(t, "reconnect", func() bool { return c.Stats().Connected && fresh.Stats().Connected })
	if fresh.State().Source != sdk.SourceController {
		t.Fatalf("fresh client after resync: %+v", fresh.State())
	}
	override(t, srv, 3)
	waitFor(t, "change after restart", func() bool {
		return c.Level() == sdk.LevelMaintenance && fresh.Level() == sdk.LevelMaintenance
	})
	current := getService(t, srv, "checkout").Version
	if c.State().Version != current || fresh.State().Version != current {
		t.Fatalf("versions %d and %d, controller %d", c.State().Version, fresh.State().Version, current)
	}
	waitFor(t, "both acked", func() bool {
		return instanceVersion(t, srv, "checkout-1") == current && instanceVersion(t, srv, "checkout-2") == current
	})

	// Revoking the token stops both for good; they keep serving.
	srv.MustDo(t, http.MethodDelete, "/api/v1/tokens/"+tokenID, srv.AdminToken, nil, http.StatusOK, nil)
	waitFor(t, "revocation", func() bool { return c.Err() != nil && fresh.Err() != nil })
	for _, cl := range []*sdk.Client{c, fresh} {
		if !errors.Is(cl.Err(), sdk.ErrUnauthorized) {
			t.Fatalf("Err() = %v, want ErrUnauthorized", cl.Err())
		}
		if cl.Level() != sdk.LevelMaintenance {
			t.Fatalf("level after revocation = %v", cl.Level())
		}
	}
	// And a new client with the revoked token is refused at once.
	again := connectTo(t, srv.URL, "checkout-3", token)
	waitFor(t, "refusal", func() bool { return again.Err() != nil })
	if !errors.Is(again.Err(), sdk.ErrUnauthorized) {
		t.Fatalf("revoked token: Err() = %v", again.Err())
	}
}

func TestContractTokenForAnotherService(t *testing.T) {
	srv := servertest.Start(t)
	_, billing := srv.Token(t, "sdk", "billing")
	c := connectTo(t, srv.URL, "checkout-1", billing)
	waitFor(t, "refusal", func() bool { return c.Err() != nil })
	if !errors.Is(c.Err(), sdk.ErrForbidden) {
		t.Fatalf("Err() = %v, want ErrForbidden", c.Err())
	}
	if got := c.Stats().Connections; got != 0 {
		t.Fatalf("connections = %d", got)
	}
}

type gauge struct{}

func (gauge) ComponentState() (s component.State) {
	s.Kind, s.State, s.Metrics = "breaker", "closed", map[string]float64{"failure_rate": 0.01}
	return s
}

func TestContractReports(t *testing.T) {
	srv := servertest.Start(t)
	_, token := srv.Token(t, "sdk", "checkout")
	c := connectTo(t, srv.URL, "checkout-1", token, sdk.WithReportInterval(100*time.Millisecond))
	if err := c.Register("payments", gauge{}); err != nil {
		t.Fatal(err)
	}
	c.Record(nil)
	c.Record(errors.New("failed"))
	waitFor(t, "report ingested", func() bool {
		for _, in := range getService(t, srv, "checkout").Instances {
			if in.Name == "checkout-1" && in.LastReport != nil {
				var comps struct {
					Items []struct{ Name, Kind string } `json:"items"`
				}
				srv.MustDo(t, http.MethodGet, "/api/v1/services/checkout/instances/checkout-1/components", srv.AdminToken, nil, http.StatusOK, &comps)
				return len(comps.Items) == 1 && comps.Items[0].Name == "payments" && comps.Items[0].Kind == "breaker"
			}
		}
		return false
	})
	if s := c.Stats(); s.ReportsSent == 0 || s.ReportsDropped != 0 {
		t.Fatalf("stats = %+v", s)
	}

	// Reports over HTTP, for clients without a connection.
	cpu, mem := 5.0, 10.0
	err := c.PostReports(context.Background(), sdk.Report{Service: "checkout", Instance: "batch-1", CPUPercent: &cpu, MemoryPercent: &mem, Requests: 3})
	if err != nil {
		t.Fatal(err)
	}
}
