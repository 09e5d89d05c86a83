package sqlite

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/featureflags"
	"github.com/brownout-io/brownout/internal/levels"
)

func customThresholds() levels.Thresholds {
	t := levels.Default()
	t.Cooldown = levels.Duration(90 * time.Second)
	t.Levels[0].CPU = levels.Bound{Enter: 65, Exit: 50}
	return t
}

func customFlags() featureflags.Set {
	return featureflags.Set{Levels: []featureflags.LevelFlags{{Level: 1, Flags: map[string]bool{"search": true, "analytics": false}}}}
}

func TestConfigRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	audit := func(action, target string) brownout.AuditEntry {
		return brownout.AuditEntry{At: ts(0), Actor: "alice", Action: action, Target: target,
			Before: json.RawMessage(`null`), After: json.RawMessage(`{"x":1}`)}
	}
	tests := []struct {
		name string
		// put stores a value; get reads it back.
		put func(db *DB) error
		get func(db *DB) (any, bool, error)
		del func(db *DB) (bool, error)
		// all lists the per-service values.
		all  func(db *DB) (any, error)
		want any
		// wantAll is what all returns after put.
		wantAll any
		// service is what the audit entry should be filtered by.
		service string
	}{
		{
			name: "global thresholds",
			put: func(db *DB) error {
				return db.PutGlobalThresholds(ctx, customThresholds(), audit("put_thresholds", "thresholds"))
			},
			get:  func(db *DB) (any, bool, error) { return db.GlobalThresholds(ctx) },
			all:  func(db *DB) (any, error) { return db.AllServiceThresholds(ctx) },
			want: customThresholds(), wantAll: map[string]levels.Thresholds{},
		},
		{
			name: "service thresholds",
			put: func(db *DB) error {
				return db.PutServiceThresholds(ctx, "checkout", customThresholds(), audit("put_thresholds", "thresholds"))
			},
			get: func(db *DB) (any, bool, error) { return db.ServiceThresholds(ctx, "checkout") },
			del: func(db *DB) (bool, error) {
				return db.DeleteServiceThresholds(ctx, "checkout", audit("delete_thresholds", "x"))
			},
			all:  func(db *DB) (any, error) { return db.AllServiceThresholds(ctx) },
			want: customThresholds(), wantAll: map[string]levels.Thresholds{"checkout": customThresholds()},
			service: "checkout",
		},
		{
			name: "global flags",
			put: func(db *DB) error {
				return db.PutGlobalFlags(ctx, featureflags.Default(), audit("put_flags", "flags"))
			},
			get:  func(db *DB) (any, bool, error) { return db.GlobalFlags(ctx) },
			all:  func(db *DB) (any, error) { return db.AllServiceFlags(ctx) },
			want: featureflags.Default(), wantAll: map[string]featureflags.Set{},
		},
		{
			name: "service flags",
			put: func(db *DB) error {
				return db.PutServiceFlags(ctx, "search", customFlags(), audit("put_flags", "flags"))
			},
			get:  func(db *DB) (any, bool, error) { return db.ServiceFlags(ctx, "search") },
			del:  func(db *DB) (bool, error) { return db.DeleteServiceFlags(ctx, "search", audit("delete_flags", "x")) },
			all:  func(db *DB) (any, error) { return db.AllServiceFlags(ctx) },
			want: customFlags(), wantAll: map[string]featureflags.Set{"search": customFlags()},
			service: "search",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := MustOpenDB(t)
			if _, ok, err := tt.get(db); err != nil || ok {
				t.Fatalf("before put: got ok=%v err=%v, want ok=false", ok, err)
			}
			if err := tt.put(db); err != nil {
				t.Fatal(err)
			}
			got, ok, err := tt.get(db)
			if err != nil || !ok {
				t.Fatalf("after put: got ok=%v err=%v", ok, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			all, err := tt.all(db)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(all, tt.wantAll) {
				t.Fatalf("all: got %+v, want %+v", all, tt.wantAll)
			}

			page, err := db.ListAudit(ctx, brownout.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Items) != 1 || page.Items[0].Actor != "alice" || string(page.Items[0].After) != `{"x":1}` {
				t.Fatalf("audit after put: got %+v, want one entry by alice", page.Items)
			}
			if tt.service != "" {
				page, err := db.ListAudit(ctx, brownout.Filter{Service: tt.service})
				if err != nil {
					t.Fatal(err)
				}
				if len(page.Items) != 1 {
					t.Fatalf("audit for service %q: got %d entries, want 1", tt.service, len(page.Items))
				}
			}

			// A second put replaces the first.
			if err := tt.put(db); err != nil {
				t.Fatal(err)
			}
			if tt.del == nil {
				return
			}
			existed, err := tt.del(db)
			if err != nil || !existed {
				t.Fatalf("delete: got existed=%v err=%v, want true", existed, err)
			}
			if _, ok, _ := tt.get(db); ok {
				t.Fatal("after delete: still stored")
			}
			existed, err = tt.del(db)
			if err != nil || existed {
				t.Fatalf("second delete: got existed=%v err=%v, want false", existed, err)
			}
			page, err = db.ListAudit(ctx, brownout.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Items) != 3 {
				t.Fatalf("got %d audit entries (put, put, delete), want 3", len(page.Items))
			}
		})
	}
}

func TestConfigBadServiceName(t *testing.T) {
	t.Parallel()
	db := MustOpenDB(t)
	ctx := context.Background()
	for _, name := range []string{"", "*", "Upper", "-x"} {
		err := db.PutServiceThresholds(ctx, name, levels.Default(), brownout.AuditEntry{})
		wantCode(t, err, brownout.EBADREQUEST)
		_, _, err = db.ServiceFlags(ctx, name)
		wantCode(t, err, brownout.EBADREQUEST)
	}
}

// TestConfigAuditAtomic makes the audit insert fail and checks that the
// config change it belongs to was not stored either.
func TestConfigAuditAtomic(t *testing.T) {
	t.Parallel()
	db := MustOpenDB(t)
	ctx := context.Background()
	if err := db.PutServiceThresholds(ctx, "checkout", levels.Default(), brownout.AuditEntry{At: ts(0), Actor: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.Exec(`CREATE TRIGGER audit_fails BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit refused'); END`); err != nil {
		t.Fatal(err)
	}
	changes := []struct {
		name string
		do   func() error
	}{
		{"put global thresholds", func() error {
			return db.PutGlobalThresholds(ctx, customThresholds(), brownout.AuditEntry{At: ts(0)})
		}},
		{"put service thresholds", func() error {
			return db.PutServiceThresholds(ctx, "checkout", customThresholds(), brownout.AuditEntry{At: ts(0)})
		}},
		{"delete service thresholds", func() error {
			_, err := db.DeleteServiceThresholds(ctx, "checkout", brownout.AuditEntry{At: ts(0)})
			return err
		}},
		{"put global flags", func() error { return db.PutGlobalFlags(ctx, customFlags(), brownout.AuditEntry{At: ts(0)}) }},
		{"create override", func() error {
			return db.CreateOverride(ctx, brownout.Override{ID: "o1", Service: "*", Level: 3, Reason: "r", CreatedAt: ts(0)}, brownout.AuditEntry{})
		}},
		{"create token", func() error {
			return db.CreateToken(ctx, brownout.Token{ID: "t1", Hash: []byte{1}, CreatedAt: ts(0)}, brownout.AuditEntry{})
		}},
	}
	for _, c := range changes {
		if err := c.do(); err == nil {
			t.Errorf("%s: succeeded although its audit entry failed", c.name)
		}
	}
	if _, ok, _ := db.GlobalThresholds(ctx); ok {
		t.Error("global thresholds stored without audit")
	}
	got, ok, err := db.ServiceThresholds(ctx, "checkout")
	if err != nil || !ok || !reflect.DeepEqual(got, levels.Default()) {
		t.Errorf("service thresholds changed without audit: %+v ok=%v err=%v", got, ok, err)
	}
	if _, ok, _ := db.GlobalFlags(ctx); ok {
		t.Error("global flags stored without audit")
	}
	wantCode(t, func() error { _, err := db.GetOverride(ctx, "o1"); return err }(), brownout.ENOTFOUND)
	if toks, _ := db.ListTokens(ctx); len(toks) != 0 {
		t.Errorf("token stored without audit: %+v", toks)
	}
}
