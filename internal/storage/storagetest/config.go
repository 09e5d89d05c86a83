package storagetest

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/featureflags"
	"github.com/brownout-io/brownout/internal/levels"
	"github.com/brownout-io/brownout/internal/storage"
)

func CustomThresholds() levels.Thresholds {
	t := levels.Default()
	t.Cooldown = levels.Duration(90 * time.Second)
	t.Levels[0].CPU = levels.Bound{Enter: 65, Exit: 50}
	return t
}

func CustomFlags() featureflags.Set {
	return featureflags.Set{Levels: []featureflags.LevelFlags{{Level: 1, Flags: map[string]bool{"search": true, "analytics": false}}}}
}

func testConfigRoundTrip(t *testing.T, open Opener) {
	t.Parallel()
	ctx := context.Background()
	audit := func(action, target string) brownout.AuditEntry {
		return brownout.AuditEntry{At: TS(0), Actor: "alice", Action: action, Target: target,
			Before: json.RawMessage(`null`), After: json.RawMessage(`{"x":1}`)}
	}
	tests := []struct {
		name string
		// put stores a value; get reads it back.
		put func(db storage.Store) error
		get func(db storage.Store) (any, bool, error)
		del func(db storage.Store) (bool, error)
		// all lists the per-service values.
		all  func(db storage.Store) (any, error)
		want any
		// wantAll is what all returns after put.
		wantAll any
		// service is what the audit entry should be filtered by.
		service string
	}{
		{
			name: "global thresholds",
			put: func(db storage.Store) error {
				return db.PutGlobalThresholds(ctx, CustomThresholds(), audit("put_thresholds", "thresholds"))
			},
			get:  func(db storage.Store) (any, bool, error) { return db.GlobalThresholds(ctx) },
			all:  func(db storage.Store) (any, error) { return db.AllServiceThresholds(ctx) },
			want: CustomThresholds(), wantAll: map[string]levels.Thresholds{},
		},
		{
			name: "service thresholds",
			put: func(db storage.Store) error {
				return db.PutServiceThresholds(ctx, "checkout", CustomThresholds(), audit("put_thresholds", "thresholds"))
			},
			get: func(db storage.Store) (any, bool, error) { return db.ServiceThresholds(ctx, "checkout") },
			del: func(db storage.Store) (bool, error) {
				return db.DeleteServiceThresholds(ctx, "checkout", audit("delete_thresholds", "x"))
			},
			all:  func(db storage.Store) (any, error) { return db.AllServiceThresholds(ctx) },
			want: CustomThresholds(), wantAll: map[string]levels.Thresholds{"checkout": CustomThresholds()},
			service: "checkout",
		},
		{
			name: "global flags",
			put: func(db storage.Store) error {
				return db.PutGlobalFlags(ctx, featureflags.Default(), audit("put_flags", "flags"))
			},
			get:  func(db storage.Store) (any, bool, error) { return db.GlobalFlags(ctx) },
			all:  func(db storage.Store) (any, error) { return db.AllServiceFlags(ctx) },
			want: featureflags.Default(), wantAll: map[string]featureflags.Set{},
		},
		{
			name: "service flags",
			put: func(db storage.Store) error {
				return db.PutServiceFlags(ctx, "search", CustomFlags(), audit("put_flags", "flags"))
			},
			get: func(db storage.Store) (any, bool, error) { return db.ServiceFlags(ctx, "search") },
			del: func(db storage.Store) (bool, error) {
				return db.DeleteServiceFlags(ctx, "search", audit("delete_flags", "x"))
			},
			all:  func(db storage.Store) (any, error) { return db.AllServiceFlags(ctx) },
			want: CustomFlags(), wantAll: map[string]featureflags.Set{"search": CustomFlags()},
			service: "search",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := open(t)
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

func testConfigBadServiceName(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	for _, name := range []string{"", "*", "Upper", "-x"} {
		err := db.PutServiceThresholds(ctx, name, levels.Default(), brownout.AuditEntry{})
		WantCode(t, err, brownout.EBADREQUEST)
		_, _, err = db.ServiceFlags(ctx, name)
		WantCode(t, err, brownout.EBADREQUEST)
	}
}
