package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

// A state offered with Version 0 gets its version from the store, in the
// committing transaction, and the batch learns it.
func testVersionsAllocated(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	mk := func(name string, level int) brownout.StateChange {
		return brownout.StateChange{
			State: brownout.ServiceState{Name: name, Level: level, ChangedAt: TS(0), CreatedAt: TS(0), Cause: "signal"},
			Changes: []brownout.LevelChange{{Kind: brownout.KindEffective, ToLevel: level, At: TS(0),
				Cause: brownout.CauseSignal, Inputs: []byte(`{}`)}},
		}
	}
	batch := []brownout.StateChange{mk("a", 1), mk("b", 2)}
	if err := db.SaveServiceStates(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for _, sc := range batch {
		if sc.State.Version != 1 || sc.Changes[0].Version != 1 {
			t.Fatalf("new service %s: got version %d (change %d), want 1", sc.State.Name, sc.State.Version, sc.Changes[0].Version)
		}
	}
	// An explicit version above the stored one is kept; allocation goes on
	// from there.
	if err := db.SaveServiceState(ctx, brownout.ServiceState{Name: "a", Version: 7, ChangedAt: TS(0), CreatedAt: TS(0)}, nil); err != nil {
		t.Fatal(err)
	}
	batch = []brownout.StateChange{mk("a", 3), mk("b", 0)}
	if err := db.SaveServiceStates(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if batch[0].State.Version != 8 || batch[1].State.Version != 2 {
		t.Fatalf("got versions a=%d b=%d, want 8 and 2", batch[0].State.Version, batch[1].State.Version)
	}
	// Override paths allocate as well.
	o := brownout.Override{ID: "ovr_a", Service: "a", Level: 3, Reason: "r", Actor: "x", CreatedAt: TS(time.Second)}
	states := []brownout.StateChange{mk("a", 3)}
	if err := db.CreateOverrideWithStates(ctx, o, brownout.AuditEntry{At: TS(0), Actor: "x", Action: "override.create", Target: "override:ovr_a service:a"}, states); err != nil {
		t.Fatal(err)
	}
	if states[0].State.Version != 9 {
		t.Fatalf("override state: got version %d, want 9", states[0].State.Version)
	}
	states = []brownout.StateChange{mk("a", 0)}
	if _, err := db.ClearOverrideWithStates(ctx, "ovr_a", "x", TS(2*time.Second), brownout.AuditEntry{At: TS(0)}, states); err != nil {
		t.Fatal(err)
	}
	if states[0].State.Version != 10 {
		t.Fatalf("cleared override state: got version %d, want 10", states[0].State.Version)
	}
	got, err := db.LoadServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "a" || got[0].Version != 10 || got[1].Version != 2 {
		t.Fatalf("stored: %+v", got)
	}
	page, err := db.ListLevelChanges(ctx, brownout.Filter{Service: "a"})
	if err != nil {
		t.Fatal(err)
	}
	var versions []uint64
	for _, c := range page.Items {
		versions = append(versions, c.Version)
	}
	if want := []uint64{10, 9, 8, 1}; !slices.Equal(versions, want) {
		t.Fatalf("level change versions of a: got %v, want %v", versions, want)
	}
}

// Many writers allocating versions of one service at once get distinct
// versions, and the stored one is the highest: versions never go back
// whoever commits.
func testVersionsAllocatedConcurrently(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	const writers, each = 4, 10
	var mu sync.Mutex
	var got []uint64
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				batch := []brownout.StateChange{{State: brownout.ServiceState{Name: "shared", Level: (w + i) % 4,
					ChangedAt: TS(0), CreatedAt: TS(0), Cause: fmt.Sprint(w)}}}
				if err := db.SaveServiceStates(ctx, batch); err != nil {
					errc <- err
					return
				}
				mu.Lock()
				got = append(got, batch[0].State.Version)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	slices.Sort(got)
	for i, v := range got {
		if v != uint64(i+1) {
			t.Fatalf("allocated versions %v: want 1..%d, each once", got, writers*each)
		}
	}
	states, err := db.LoadServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 || states[0].Version != writers*each {
		t.Fatalf("stored %+v, want version %d", states, writers*each)
	}
}

// A sample stored again for the same service and instant replaces the
// first, within one batch and across batches.
func testSamplesReplace(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	s := brownout.Sample{Service: "checkout", At: TS(0), CPUPercent: 10, Instances: 1}
	s2 := s
	s2.CPUPercent = 20
	if err := db.WriteSamples(ctx, []brownout.Sample{s, s2}); err != nil {
		t.Fatal(err)
	}
	pts, err := db.QuerySamples(ctx, "checkout", TS(0), TS(time.Second), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 1 || pts[0].CPUPercent != 20 {
		t.Fatalf("got %+v, want one point at cpu 20", pts)
	}
	s2.CPUPercent = 30
	if err := db.WriteSamples(ctx, []brownout.Sample{s2}); err != nil {
		t.Fatal(err)
	}
	pts, err = db.QuerySamples(ctx, "checkout", TS(0), TS(time.Second), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 1 || pts[0].CPUPercent != 30 {
		t.Fatalf("got %+v, want one point at cpu 30", pts)
	}
	if pts, err := db.QuerySamples(ctx, "unknown", TS(0), TS(time.Second), time.Second); err != nil || pts == nil || len(pts) != 0 {
		t.Fatalf("unknown service: got %v, %v; want an empty, non-nil slice", pts, err)
	}
}

// Rollup keeps exact sums, so that once raw samples are pruned the same
// query answers the same from the rollups; Prune deletes in batches and
// counts what it deleted.
func testRollupAndPrune(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	samples := GenSamples("checkout", TS(0), time.Second, 20*60) // 20 minutes
	MustWrite(t, db, samples)
	from, to := TS(0), TS(20*time.Minute)
	want := Aggregate(samples, from, to, 5*time.Minute)
	if err := db.Rollup(ctx, TS(20*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := db.Rollup(ctx, TS(20*time.Minute)); err != nil { // idempotent
		t.Fatal(err)
	}
	got, err := db.QuerySamples(ctx, "checkout", from, to, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	EqualPoints(t, got, want)
	// Prune every raw sample older than 10 minutes before "now" = 20 min:
	// the first 10 minutes now come from the rollups only.
	n, err := db.Prune(ctx, TS(20*time.Minute), 10*time.Minute, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if n != 10*60 {
		t.Fatalf("pruned %d rows, want %d", n, 10*60)
	}
	got, err = db.QuerySamples(ctx, "checkout", from, to, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	EqualPoints(t, got, want)
	raw, err := db.QuerySamples(ctx, "checkout", TS(10*time.Minute), to, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != 10*60 {
		t.Fatalf("after prune: %d raw points in the last 10 minutes, want %d", len(raw), 10*60)
	}
	// Rollups older than 15 minutes go too.
	n, err = db.Prune(ctx, TS(20*time.Minute), 10*time.Minute, 15*time.Minute, 2)
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Fatalf("pruned %d rollup rows, want 5", n)
	}
}

// The epoch is made once and stays.
func testEpoch(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	e1, err := db.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := db.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e1 == "" || e1 != e2 {
		t.Fatalf("epochs %q and %q: want one, not empty", e1, e2)
	}
	other := open(t)
	e3, err := other.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e3 == e1 {
		t.Fatalf("two fresh stores share epoch %q", e1)
	}
}

func testPing(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	if err := db.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// The observer sees each write transaction by name, failed ones too.
func testObserver(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	var mu sync.Mutex
	var ops []string
	db.SetObserver(func(op string, d time.Duration) {
		mu.Lock()
		ops = append(ops, op)
		mu.Unlock()
	})
	if err := db.AppendAudit(ctx, brownout.AuditEntry{At: TS(0), Actor: "a", Action: "x", Target: "y"}); err != nil {
		t.Fatal(err)
	}
	err := db.SaveServiceState(ctx, brownout.ServiceState{Name: "a", Version: 2, ChangedAt: TS(0), CreatedAt: TS(0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.SaveServiceState(ctx, brownout.ServiceState{Name: "a", Version: 1, ChangedAt: TS(0), CreatedAt: TS(0)}, nil)
	if !errors.Is(err, storage.ErrStaleVersion) {
		t.Fatalf("got %v, want ErrStaleVersion", err)
	}
	db.SetObserver(nil)
	if err := db.AppendAudit(ctx, brownout.AuditEntry{At: TS(0), Actor: "a", Action: "x", Target: "y"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"append_audit", "save_service_state", "save_service_state"}; !slices.Equal(ops, want) {
		t.Fatalf("observed %v, want %v", ops, want)
	}
}

// The acting token's id is kept beside its name, and the actor filter
// matches either.
func testAuditActorID(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	for _, a := range []brownout.AuditEntry{
		{At: TS(0), Actor: "ops", ActorID: "tok_1", Action: "x", Target: "service:checkout"},
		{At: TS(time.Second), Actor: "ops", ActorID: "tok_2", Action: "y", Target: "service:checkout"},
	} {
		if err := db.AppendAudit(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for filter, want := range map[string][]string{"tok_1": {"x"}, "tok_2": {"y"}, "ops": {"y", "x"}, "nobody": nil} {
		p, err := db.ListAudit(ctx, brownout.Filter{Actor: filter})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range p.Items {
			got = append(got, a.Action)
			if a.Actor != "ops" || (a.Action == "x") != (a.ActorID == "tok_1") {
				t.Fatalf("entry %+v", a)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("actor %q: got %v, want %v", filter, got, want)
		}
	}
}
