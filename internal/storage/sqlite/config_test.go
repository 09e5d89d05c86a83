package sqlite

import (
	"context"
	"reflect"
	"testing"

	"github.com/brownout-io/brownout/internal/storage/storagetest"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/levels"
)

// TestConfigAuditAtomic makes the audit insert fail and checks that the
// config change it belongs to was not stored either.
func TestConfigAuditAtomic(t *testing.T) {
	t.Parallel()
	db := MustOpenDB(t)
	ctx := context.Background()
	if err := db.PutServiceThresholds(ctx, "checkout", levels.Default(), brownout.AuditEntry{At: storagetest.TS(0), Actor: "a"}); err != nil {
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
			return db.PutGlobalThresholds(ctx, storagetest.CustomThresholds(), brownout.AuditEntry{At: storagetest.TS(0)})
		}},
		{"put service thresholds", func() error {
			return db.PutServiceThresholds(ctx, "checkout", storagetest.CustomThresholds(), brownout.AuditEntry{At: storagetest.TS(0)})
		}},
		{"delete service thresholds", func() error {
			_, err := db.DeleteServiceThresholds(ctx, "checkout", brownout.AuditEntry{At: storagetest.TS(0)})
			return err
		}},
		{"put global flags", func() error {
			return db.PutGlobalFlags(ctx, storagetest.CustomFlags(), brownout.AuditEntry{At: storagetest.TS(0)})
		}},
		{"create override", func() error {
			return db.CreateOverride(ctx, brownout.Override{ID: "o1", Service: "*", Level: 3, Reason: "r", CreatedAt: storagetest.TS(0)}, brownout.AuditEntry{})
		}},
		{"create token", func() error {
			return db.CreateToken(ctx, brownout.Token{ID: "t1", Hash: []byte{1}, CreatedAt: storagetest.TS(0)}, brownout.AuditEntry{})
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
	if toks, _ := db.ListTokens(ctx); len(toks) != 0 {
		t.Errorf("token stored without audit: %+v", toks)
	}
}
