package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/app"
	"github.com/brownout-io/brownout/internal/servertest"
)

// TestRetireService: refused while an instance reports; once it is stale
// the service leaves the list and the metrics, the audit says who, its
// history stays, a restart does not bring it back, and a new report
// revives it with versions above the old ones.
func TestRetireService(t *testing.T) {
	s := servertest.Start(t, servertest.WithConfig(func(c *app.Config) {
		c.Controller.StaleAfter = time.Second
		c.Controller.Window = time.Second
	}))
	s.MustDo(t, "POST", "/api/v1/reports", s.AdminToken, report("old-svc", "o-1", 95, 10, 10, 0), 202, nil)
	s.MustDo(t, "POST", "/api/v1/reports", s.AdminToken, report("keep", "k-1", 10, 10, 10, 0), 202, nil)
	var before struct {
		Version uint64 `json:"version"`
	}
	eventually(t, "level change", func() bool {
		s.MustDo(t, "GET", "/api/v1/services/old-svc", s.AdminToken, nil, 200, &before)
		return before.Version >= 2
	})
	s.MustDo(t, "POST", "/api/v1/reports", s.AdminToken, report("old-svc", "o-1", 95, 10, 10, 0), 202, nil)
	if st, b := s.Do(t, "DELETE", "/api/v1/services/old-svc", s.AdminToken, nil); st != 409 || !strings.Contains(string(b), "live instance") {
		t.Fatalf("retire while reporting: %d %s", st, b)
	}
	viewerID, viewer := s.Token(t, "viewer", "")
	_ = viewerID
	if st, _ := s.Do(t, "DELETE", "/api/v1/services/old-svc", viewer, nil); st != 403 {
		t.Fatalf("viewer retired a service: %d", st)
	}
	var retired struct {
		Name      string `json:"name"`
		Version   uint64 `json:"version"`
		RetiredAt string `json:"retired_at"`
	}
	eventually(t, "retired once stale", func() bool {
		st, _ := s.Do(t, "DELETE", "/api/v1/services/old-svc", s.AdminToken, nil)
		if st == 200 {
			return true
		}
		if st != 409 {
			t.Fatalf("retire: %d", st)
		}
		return false
	})
	if st, _ := s.Do(t, "DELETE", "/api/v1/services/old-svc", s.AdminToken, nil); st != 404 {
		t.Fatalf("retiring again: %d, want 404", st)
	}
	if st, _ := s.Do(t, "DELETE", "/api/v1/services/Bad_Name", s.AdminToken, nil); st != 400 {
		t.Fatalf("bad name: %d, want 400", st)
	}
	gone := func() {
		t.Helper()
		var list struct {
			Items []struct {
				Name string `json:"name"`
			} `json:"items"`
		}
		s.MustDo(t, "GET", "/api/v1/services", s.AdminToken, nil, 200, &list)
		for _, it := range list.Items {
			if it.Name == "old-svc" {
				t.Fatal("retired service still listed")
			}
		}
		if len(list.Items) != 1 {
			t.Fatalf("services %+v, want only keep", list.Items)
		}
		if st, _ := s.Do(t, "GET", "/api/v1/services/old-svc", s.AdminToken, nil); st != 404 {
			t.Fatalf("GET retired service: %d", st)
		}
	}
	gone()
	_, m := s.Do(t, "GET", "/metrics", "", nil)
	if strings.Contains(string(m), `brownout_service_level{service="old-svc"}`) {
		t.Fatal("retired service still in the level gauge")
	}
	_, audit := s.Do(t, "GET", "/api/v1/audit?service=old-svc", s.AdminToken, nil)
	if !strings.Contains(string(audit), `"service.retire"`) {
		t.Fatalf("no audit entry: %s", audit)
	}
	_, hist := s.Do(t, "GET", "/api/v1/history/levels?service=old-svc", s.AdminToken, nil)
	if !strings.Contains(string(hist), `"to_level":3`) {
		t.Fatalf("history lost: %s", hist)
	}

	s.Stop(t)
	s.Restart(t)
	gone()

	// Reporting again revives it, versions continuing.
	s.MustDo(t, "POST", "/api/v1/reports", s.AdminToken, report("old-svc", "o-2", 10, 10, 10, 0), 202, nil)
	var after struct {
		Version uint64 `json:"version"`
	}
	eventually(t, "revived", func() bool {
		st, _ := s.Do(t, "GET", "/api/v1/services/old-svc", s.AdminToken, nil)
		return st == 200
	})
	s.MustDo(t, "GET", "/api/v1/services/old-svc", s.AdminToken, nil, 200, &after)
	if after.Version <= before.Version {
		t.Fatalf("revived at version %d, not above the retired %d", after.Version, before.Version)
	}
	_ = retired
}
