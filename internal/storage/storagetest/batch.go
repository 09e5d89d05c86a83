package storagetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

// A batch of states is all or nothing: one stale version refuses the whole
// batch, so a global change never lands for some services only.
func testSaveServiceStatesIsAllOrNothing(t *testing.T, open Opener) {
	ctx := context.Background()
	db := open(t)
	at := time.Unix(1_700_000_000, 0).UTC()
	st := func(name string, v uint64, level int) brownout.StateChange {
		return brownout.StateChange{
			State: brownout.ServiceState{Name: name, Version: v, Level: level, ChangedAt: at, CreatedAt: at, Cause: "signal"},
			Changes: []brownout.LevelChange{{Service: name, Kind: brownout.KindEffective, ToLevel: level, At: at,
				Cause: brownout.CauseSignal, Version: v, Inputs: []byte(`{}`)}},
		}
	}
	if err := db.SaveServiceStates(ctx, []brownout.StateChange{st("a", 1, 0), st("b", 5, 0)}); err != nil {
		t.Fatal(err)
	}
	err := db.SaveServiceStates(ctx, []brownout.StateChange{st("a", 2, 3), st("b", 5, 3)})
	if !errors.Is(err, storage.ErrStaleVersion) {
		t.Fatalf("stale batch: %v, want ErrStaleVersion", err)
	}
	states, err := db.LoadServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range states {
		if s.Level != 0 || (s.Name == "a" && s.Version != 1) {
			t.Fatalf("refused batch left a trace: %+v", s)
		}
	}
	page, err := db.ListLevelChanges(ctx, brownout.Filter{Limit: 10})
	if err != nil || len(page.Items) != 2 {
		t.Fatalf("level changes after a refused batch: %d, %v", len(page.Items), err)
	}
	if err := db.SaveServiceStates(ctx, []brownout.StateChange{st("a", 2, 3), st("b", 6, 3)}); err != nil {
		t.Fatal(err)
	}
}

// An override and the states it causes land together or not at all.
func testOverrideWithStatesIsAllOrNothing(t *testing.T, open Opener) {
	ctx := context.Background()
	db := open(t)
	at := time.Unix(1_700_000_000, 0).UTC()
	state := func(v uint64) []brownout.StateChange {
		return []brownout.StateChange{{State: brownout.ServiceState{Name: "a", Version: v, Level: 3, ChangedAt: at, CreatedAt: at, Cause: "override"}}}
	}
	if err := db.SaveServiceStates(ctx, state(4)); err != nil {
		t.Fatal(err)
	}
	o := brownout.Override{ID: "ovr_1", Service: "a", Level: 3, Reason: "r", Actor: "t", CreatedAt: at}
	a := brownout.AuditEntry{At: at, Actor: "t", Action: "override.create", Target: "service:a"}
	if err := db.CreateOverrideWithStates(ctx, o, a, state(4)); !errors.Is(err, storage.ErrStaleVersion) {
		t.Fatalf("stale state: %v", err)
	}
	if _, err := db.GetOverride(ctx, "ovr_1"); brownout.ErrorCode(err) != brownout.ENOTFOUND {
		t.Fatalf("override stored although its states were refused: %v", err)
	}
	if err := db.CreateOverrideWithStates(ctx, o, a, state(5)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ClearOverrideWithStates(ctx, "ovr_1", "t", at.Add(time.Second), a, state(5)); !errors.Is(err, storage.ErrStaleVersion) {
		t.Fatalf("stale clear: %v", err)
	}
	if got, _ := db.GetOverride(ctx, "ovr_1"); got.ClearedAt != nil {
		t.Fatal("override cleared although its states were refused")
	}
	if _, err := db.ClearOverrideWithStates(ctx, "ovr_1", "t", at.Add(time.Second), a, state(6)); err != nil {
		t.Fatal(err)
	}
}
