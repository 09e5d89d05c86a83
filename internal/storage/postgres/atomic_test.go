package postgres

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/levels"
	"github.com/brownout-io/brownout/internal/storage/storagetest"
)

// TestAuditAtomic makes every audit insert fail and checks that the change
// it belongs to was not stored either, and that no replica heard of it: the
// notification is part of the transaction that failed.
func TestAuditAtomic(t *testing.T) {
	t.Parallel()
	_, db, other := twoReplicas(t)
	ctx := context.Background()
	at := storagetest.TS(0)
	if err := db.PutServiceThresholds(ctx, "checkout", levels.Default(), brownout.AuditEntry{At: at, Actor: "a"}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE FUNCTION audit_fails() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$`,
		`CREATE TRIGGER audit_fails BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION audit_fails()`,
	} {
		if _, err := db.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	f := listen(t, other)
	f.next(t, brownout.ChangeResync)
	changes := []struct {
		name string
		do   func() error
	}{
		{"put global thresholds", func() error {
			return db.PutGlobalThresholds(ctx, storagetest.CustomThresholds(), brownout.AuditEntry{At: at})
		}},
		{"put service thresholds", func() error {
			return db.PutServiceThresholds(ctx, "checkout", storagetest.CustomThresholds(), brownout.AuditEntry{At: at})
		}},
		{"delete service thresholds", func() error {
			_, err := db.DeleteServiceThresholds(ctx, "checkout", brownout.AuditEntry{At: at})
			return err
		}},
		{"put global flags", func() error {
			return db.PutGlobalFlags(ctx, storagetest.CustomFlags(), brownout.AuditEntry{At: at})
		}},
		{"create override with states", func() error {
			return db.CreateOverrideWithStates(ctx, brownout.Override{ID: "o1", Service: "*", Level: 3, Reason: "r", CreatedAt: at},
				brownout.AuditEntry{}, []brownout.StateChange{state("checkout", 3)})
		}},
		{"create token", func() error {
			return db.CreateToken(ctx, brownout.Token{ID: "t1", Hash: []byte{1}, CreatedAt: at}, brownout.AuditEntry{})
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
	storagetest.WantCode(t, func() error { _, err := db.GetOverride(ctx, "o1"); return err }(), brownout.ENOTFOUND)
	storagetest.WantCode(t, func() error { _, err := db.LoadService(ctx, "checkout"); return err }(), brownout.ENOTFOUND)
	if toks, _ := db.ListTokens(ctx); len(toks) != 0 {
		t.Errorf("token stored without audit: %+v", toks)
	}
	// Nothing of the failed transactions reached the other replica: the
	// next thing it hears is this state, committed without audit.
	if err := db.SaveServiceStates(ctx, []brownout.StateChange{state("search", 1)}); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-f.ch:
		if c.Kind != brownout.ChangeState || c.Service != "search" {
			t.Fatalf("the other replica heard %+v first; want the search state", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification of the committed state")
	}
}
