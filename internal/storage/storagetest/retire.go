package storagetest

import (
	"context"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
)

// testRetireService: retiring keeps the row (version, history) with
// RetiredAt set and writes the audit entry; retiring again or an unknown
// name is ENOTFOUND; saving a state revives it above the stored version.
func testRetireService(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	st := brownout.ServiceState{Name: "gone", Version: 5, Level: 2, ComputedLevel: 2, ChangedAt: TS(0), Cause: "signal", CreatedAt: TS(0)}
	if err := db.SaveServiceState(ctx, st, []brownout.LevelChange{{Kind: brownout.KindEffective, FromLevel: 0, ToLevel: 2, At: TS(0), Cause: brownout.CauseSignal, Version: 5}}); err != nil {
		t.Fatal(err)
	}
	a := brownout.AuditEntry{At: TS(time.Minute), Actor: "admin", ActorID: "admin", Action: "service.retire", Target: "gone", Before: []byte(`{}`), After: []byte(`null`)}
	if err := db.RetireService(ctx, "gone", TS(time.Minute), a); err != nil {
		t.Fatal(err)
	}
	WantCode(t, db.RetireService(ctx, "gone", TS(2*time.Minute), a), brownout.ENOTFOUND)
	WantCode(t, db.RetireService(ctx, "never", TS(2*time.Minute), a), brownout.ENOTFOUND)
	got, err := db.LoadServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Version != 5 || !got[0].RetiredAt.Equal(TS(time.Minute)) {
		t.Fatalf("after retirement: %+v", got)
	}
	page, err := db.ListAudit(ctx, brownout.Filter{Service: "gone"})
	if err != nil || len(page.Items) != 1 || page.Items[0].Action != "service.retire" {
		t.Fatalf("audit %+v %v", page.Items, err)
	}
	lc, err := db.ListLevelChanges(ctx, brownout.Filter{Service: "gone"})
	if err != nil || len(lc.Items) != 1 {
		t.Fatalf("history after retirement %+v %v", lc.Items, err)
	}
	// Revival: the next version is above the stored one, RetiredAt clears.
	st.Version, st.ChangedAt = 6, TS(3*time.Minute)
	if err := db.SaveServiceState(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	got, err = db.LoadServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Version != 6 || !got[0].RetiredAt.IsZero() {
		t.Fatalf("after revival: %+v", got)
	}
}
