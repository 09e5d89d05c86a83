package storagetest

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

func testSaveServiceState(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()

	st := brownout.ServiceState{Name: "checkout", Version: 1, Level: 0, ComputedLevel: 0, ChangedAt: TS(0), Cause: "start", CreatedAt: TS(0)}
	if err := db.SaveServiceState(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	st2 := brownout.ServiceState{Name: "checkout", Version: 2, Level: 3, ComputedLevel: 1, OverrideID: "o1",
		CalmSince: TS(5 * time.Second), ChangedAt: TS(10 * time.Second), Cause: brownout.CauseOverride, CreatedAt: TS(0)}
	changes := []brownout.LevelChange{
		{Service: "checkout", Kind: brownout.KindEffective, FromLevel: 0, ToLevel: 3, At: TS(10 * time.Second),
			Cause: brownout.CauseOverride, Version: 2, Inputs: json.RawMessage(`{"override":"o1"}`)},
		{Kind: brownout.KindComputed, FromLevel: 0, ToLevel: 1, At: TS(10 * time.Second), Cause: brownout.CauseSignal, Version: 2},
	}
	if err := db.SaveServiceState(ctx, st2, changes); err != nil {
		t.Fatal(err)
	}
	other := brownout.ServiceState{Name: "api", Version: 7, ChangedAt: TS(0), CreatedAt: TS(0)}
	if err := db.SaveServiceState(ctx, other, nil); err != nil {
		t.Fatal(err)
	}

	got, err := db.LoadServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []brownout.ServiceState{other, st2}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}

	// Versions never go back: equal or lower is refused, nothing stored.
	for _, v := range []uint64{2, 1} {
		stale := st2
		stale.Version, stale.Level = v, 1
		err := db.SaveServiceState(ctx, stale, []brownout.LevelChange{{Kind: brownout.KindEffective, At: TS(0), Cause: "x", Version: v}})
		if !errors.Is(err, storage.ErrStaleVersion) {
			t.Fatalf("version %d: got %v, want ErrStaleVersion", v, err)
		}
		WantCode(t, err, brownout.ECONFLICT)
	}
	got, _ = db.LoadServices(ctx)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after stale saves: got %+v, want %+v", got, want)
	}

	page, err := db.ListLevelChanges(ctx, brownout.Filter{Service: "checkout"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 {
		t.Fatalf("got %d level changes, want 2 (stale saves append none)", len(page.Items))
	}
	// Newest first; the change without a service took the state's.
	c := page.Items[0]
	if c.Service != "checkout" || c.Kind != brownout.KindComputed || c.ToLevel != 1 || c.Version != 2 || !c.At.Equal(TS(10*time.Second)) {
		t.Fatalf("got %+v", c)
	}
	if string(page.Items[1].Inputs) != `{"override":"o1"}` {
		t.Fatalf("inputs: got %s", page.Items[1].Inputs)
	}
}

func testOverrides(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	exp := TS(15 * time.Minute)
	overrides := []brownout.Override{
		{ID: "o1", Service: "*", Level: 3, Reason: "incident", Actor: "alice", Emergency: true, CreatedAt: TS(0)},
		{ID: "o2", Service: "checkout", Level: 2, Reason: "deploy", Actor: "bob", CreatedAt: TS(time.Minute), ExpiresAt: &exp},
		{ID: "o0", Service: "search", Level: 1, Reason: "test", Actor: "bob", CreatedAt: TS(time.Minute)},
	}
	for _, o := range overrides {
		if err := db.CreateOverride(ctx, o, brownout.AuditEntry{At: o.CreatedAt, Actor: o.Actor, Action: "create_override", Target: "override:" + o.ID}); err != nil {
			t.Fatal(err)
		}
	}
	WantCode(t, db.CreateOverride(ctx, overrides[0], brownout.AuditEntry{}), brownout.ECONFLICT)

	for _, o := range overrides {
		got, err := db.GetOverride(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, o) {
			t.Fatalf("got %+v, want %+v", got, o)
		}
	}
	_, err := db.GetOverride(ctx, "nope")
	WantCode(t, err, brownout.ENOTFOUND)

	active := func(now time.Time) []string {
		t.Helper()
		got, err := db.ActiveOverrides(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, o := range got {
			ids = append(ids, o.ID)
		}
		return ids
	}
	// Ordered by created_at, then id.
	if got, want := active(TS(2*time.Minute)), []string{"o1", "o0", "o2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("active: got %v, want %v", got, want)
	}
	if got, want := active(exp), []string{"o1", "o0"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("active at expiry: got %v, want %v", got, want)
	}

	cleared, err := db.ClearOverride(ctx, "o1", "carol", TS(3*time.Minute), brownout.AuditEntry{At: TS(3 * time.Minute), Actor: "carol", Action: "clear_override"})
	if err != nil {
		t.Fatal(err)
	}
	if cleared.ClearedAt == nil || !cleared.ClearedAt.Equal(TS(3*time.Minute)) || cleared.ClearedBy != "carol" {
		t.Fatalf("cleared: got %+v", cleared)
	}
	if got, _ := db.GetOverride(ctx, "o1"); !reflect.DeepEqual(got, cleared) {
		t.Fatalf("stored after clear: got %+v, want %+v", got, cleared)
	}
	if got, want := active(TS(4*time.Minute)), []string{"o0", "o2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("active after clear: got %v, want %v", got, want)
	}

	tests := []struct {
		name string
		id   string
		at   time.Time
		code string
	}{
		{"already cleared", "o1", TS(5 * time.Minute), brownout.ECONFLICT},
		{"expired", "o2", TS(20 * time.Minute), brownout.ECONFLICT},
		{"unknown", "nope", TS(5 * time.Minute), brownout.ENOTFOUND},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.ClearOverride(ctx, tt.id, "x", tt.at, brownout.AuditEntry{At: tt.at})
			WantCode(t, err, tt.code)
		})
	}
	page, err := db.ListAudit(ctx, brownout.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 4 {
		t.Fatalf("got %d audit entries (3 creates, 1 clear), want 4", len(page.Items))
	}
	// The override of checkout is audited under checkout; the global one
	// under no service.
	page, _ = db.ListAudit(ctx, brownout.Filter{Service: "checkout"})
	if len(page.Items) != 1 || page.Items[0].Target != "override:o2" {
		t.Fatalf("audit for checkout: got %+v", page.Items)
	}
}

func testTokens(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	toks := []brownout.Token{
		{ID: "t1", Name: "ops", Scope: brownout.ScopeAdmin, Hash: []byte("hash-1"), CreatedAt: TS(0), CreatedBy: "root"},
		{ID: "t2", Name: "dash", Scope: brownout.ScopeViewer, Hash: []byte("hash-2"), CreatedAt: TS(time.Minute), CreatedBy: "root"},
		{ID: "t3", Name: "sdk", Scope: brownout.ScopeSDK, Service: "checkout", Hash: []byte("hash-3"), CreatedAt: TS(2 * time.Minute)},
	}
	for _, tk := range toks {
		if err := db.CreateToken(ctx, tk, brownout.AuditEntry{At: tk.CreatedAt, Actor: "root", Action: "create_token", Target: "token:" + tk.ID}); err != nil {
			t.Fatal(err)
		}
	}
	dupHash := brownout.Token{ID: "t9", Hash: []byte("hash-1"), CreatedAt: TS(0)}
	WantCode(t, db.CreateToken(ctx, dupHash, brownout.AuditEntry{}), brownout.ECONFLICT)
	WantCode(t, db.CreateToken(ctx, brownout.Token{ID: "t1", Hash: []byte("other")}, brownout.AuditEntry{}), brownout.ECONFLICT)

	list, err := db.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []brownout.Token{toks[2], toks[1], toks[0]}; !reflect.DeepEqual(list, want) {
		t.Fatalf("list: got %+v\nwant %+v", list, want)
	}

	revoked, err := db.RevokeToken(ctx, "t2", TS(time.Hour), brownout.AuditEntry{At: TS(time.Hour), Actor: "root", Action: "revoke_token"})
	if err != nil {
		t.Fatal(err)
	}
	if revoked.RevokedAt == nil || !revoked.RevokedAt.Equal(TS(time.Hour)) || revoked.Name != "dash" {
		t.Fatalf("revoked: got %+v", revoked)
	}
	_, err = db.RevokeToken(ctx, "t2", TS(time.Hour), brownout.AuditEntry{})
	WantCode(t, err, brownout.ECONFLICT)
	_, err = db.RevokeToken(ctx, "nope", TS(time.Hour), brownout.AuditEntry{})
	WantCode(t, err, brownout.ENOTFOUND)

	active, err := db.ActiveTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 2 || active[0].ID != "t3" || active[1].ID != "t1" {
		t.Fatalf("active: got %+v", active)
	}
	list, _ = db.ListTokens(ctx)
	if len(list) != 3 || list[1].RevokedAt == nil {
		t.Fatalf("list after revoke: got %+v", list)
	}
	page, _ := db.ListAudit(ctx, brownout.Filter{Service: "checkout"})
	if len(page.Items) != 1 || page.Items[0].Target != "token:t3" {
		t.Fatalf("audit for checkout: got %+v", page.Items)
	}
}
