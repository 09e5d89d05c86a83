package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/controller"
	"github.com/brownout-io/brownout/internal/hub"
	"github.com/brownout-io/brownout/internal/levels"
	"github.com/brownout-io/brownout/internal/storage/sqlite"
	"github.com/brownout-io/brownout/internal/storage/storagetest"
)

// A leader and a follower over one store, the change feed played by hand:
// the follower commits no state, stores the operator's override alone, the
// leader evaluates it, and the follower publishes the committed state to
// its own subscribers exactly as the leader did. Reports received by the
// follower reach the leader only as folds, and move its level.
func TestFollowerPublishesWhatTheLeaderCommits(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	db := openStore(t)
	leader, lhub := newController(t, db, clk)
	fhub := hub.New(hub.Config{Now: clk.Now}, nil)
	follower := controller.New(controller.Config{Now: clk.Now, Follower: true, CreateWait: 50 * time.Millisecond}, db, nil, fhub, nil, nil)
	if err := follower.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if follower.Leading() || !leader.Leading() {
		t.Fatal("roles: want a leader and a follower")
	}
	// feed delivers every committed state to the follower, as the change
	// feed would.
	feed := func() {
		t.Helper()
		states, err := db.LoadServices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range states {
			follower.ApplyState(st)
		}
	}

	// A subscription on the follower to a service nobody created waits
	// for the leader, and gives up with EUNAVAILABLE when none creates it.
	if err := follower.EnsureService(ctx, "api"); brownout.ErrorCode(err) != brownout.EUNAVAILABLE {
		t.Fatalf("follower creating a service alone: %v, want EUNAVAILABLE", err)
	}
	// The request travelled as a fold: the leader creates the service.
	folds := follower.TakeFolds()
	if _, ok := folds["api"]; !ok {
		t.Fatalf("folds %v: want the service asked for", folds)
	}
	if err := leader.MergePartials(ctx, partials(folds)); err != nil {
		t.Fatal(err)
	}
	feed()
	if err := follower.EnsureService(ctx, "api"); err != nil {
		t.Fatalf("after the leader created it: %v", err)
	}
	sub, err := fhub.Subscribe("api", "api-1", "tok", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	first := sub.Take()

	// Reports at the follower are folded, shipped and merged: the leader's
	// level moves, the follower's own evaluation does nothing.
	for range 3 {
		if err := follower.Ingest(ctx, report("api", "api-1", 95)); err != nil {
			t.Fatal(err)
		}
	}
	follower.Tick(ctx)
	if l, _ := level(t, follower, "api"); l != 0 {
		t.Fatalf("follower evaluated on its own: level %d", l)
	}
	if err := leader.MergePartials(ctx, partials(follower.TakeFolds())); err != nil {
		t.Fatal(err)
	}
	leader.Tick(ctx)
	if l, _ := level(t, leader, "api"); l != 3 {
		t.Fatalf("leader level after merged reports at cpu 95: %d, want 3", l)
	}
	feed()
	lv, _ := leader.State("api")
	fv, _ := follower.State("api")
	if fv.Version != lv.Version || fv.Level != 3 {
		t.Fatalf("follower state v%d level %d, leader v%d", fv.Version, fv.Level, lv.Version)
	}
	m := sub.Take()
	if m == nil || m.Version != lv.Version || m.Version <= first.Version {
		t.Fatalf("follower's subscriber got %+v, want v%d", m, lv.Version)
	}
	ls, _ := lhub.Latest("api")
	if !sameFrame(t, ls.Data, m.Data) {
		t.Fatalf("follower published\n%s\nleader published\n%s", m.Data, ls.Data)
	}

	// An override through the follower is stored, not evaluated there; the
	// leader evaluates it when the feed announces it.
	l0 := 1
	o, err := follower.CreateOverride(ctx, controller.OverrideRequest{Service: "api", Level: &l0, Reason: "drill"}, brownout.Actor{ID: "tok_op", Name: "op"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, v := level(t, follower, "api"); v != lv.Version {
		t.Fatalf("follower committed a state for its override: v%d", v)
	}
	if err := leader.ReloadOverrides(ctx); err != nil {
		t.Fatal(err)
	}
	if err := leader.Reevaluate(ctx, controller.TriggerOverride); err != nil {
		t.Fatal(err)
	}
	if err := follower.ReloadOverrides(ctx); err != nil {
		t.Fatal(err)
	}
	feed()
	fv, _ = follower.State("api")
	if fv.Level != 1 || fv.Override == nil || fv.Override.ID != o.ID {
		t.Fatalf("follower after the override: level %d override %+v, want 1 by %s", fv.Level, fv.Override, o.ID)
	}
	m = sub.Take()
	ls, _ = lhub.Latest("api")
	if m == nil || !sameFrame(t, ls.Data, m.Data) {
		t.Fatalf("follower published\n%s\nleader published\n%s", m.Data, ls.Data)
	}
}

// A follower evaluates nothing, yet each tick folds the reports it
// received into its own window, so that its inbox holds one tick's
// reports, not everything since a view last read it.
func TestFollowerTickFoldsItsInbox(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	db := openStore(t)
	leader, _ := newController(t, db, clk)
	if err := leader.EnsureService(ctx, "api"); err != nil {
		t.Fatal(err)
	}
	follower := controller.New(controller.Config{Now: clk.Now, Follower: true, CreateWait: 50 * time.Millisecond}, db, nil, hub.New(hub.Config{Now: clk.Now}, nil), nil, nil)
	if err := follower.Load(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := follower.Ingest(ctx, report("api", fmt.Sprintf("api-%d", i%7), 40)); err != nil {
			t.Fatal(err)
		}
	}
	if got := follower.InboxLen("api"); got != 100 {
		t.Fatalf("inbox holds %d reports before the tick, want 100", got)
	}
	follower.Tick(ctx)
	if got := follower.InboxLen("api"); got != 0 {
		t.Fatalf("inbox holds %d reports after the tick, want 0", got)
	}
	v, err := follower.Service("api")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Instances) != 7 {
		t.Fatalf("follower's view: %d instances, want 7", len(v.Instances))
	}
}

func partials(folds map[string][]byte) []brownout.Partial {
	var out []brownout.Partial
	for svc, b := range folds {
		out = append(out, brownout.Partial{Replica: "f", Service: svc, Tick: 1, Body: b})
	}
	return out
}

// sameFrame compares two state frames. The SQLite store does not keep a
// state's detail (a store shared by replicas does), so it is left out.
func sameFrame(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y map[string]any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	delete(x, "detail")
	delete(y, "detail")
	return reflect.DeepEqual(x, y)
}

// A follower learns of new services from the feed. A subscription waiting
// for one goes ahead only once the service's first snapshot is published,
// whichever other service's state wakes it: the hub never refuses it as
// unknown.
func TestFollowerWaitsForTheFirstSnapshot(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	db := openStore(t)
	fhub := hub.New(hub.Config{Now: clk.Now}, nil)
	follower := controller.New(controller.Config{Now: clk.Now, Follower: true, CreateWait: 10 * time.Second}, db, nil, fhub, nil, nil)
	if err := follower.Load(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 300
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("svc-%03d", i)
			if err := follower.EnsureService(ctx, name); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				return
			}
			if _, err := fhub.Subscribe(name, "i-1", "tok", 0, ""); err != nil {
				errs <- fmt.Errorf("subscribe to %s once known: %w", name, err)
			}
		}()
	}
	for i := range n {
		follower.ApplyState(brownout.ServiceState{Name: fmt.Sprintf("svc-%03d", i), Version: 1, Level: 0,
			ChangedAt: clk.Now(), CreatedAt: clk.Now(), Cause: "initial"})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// pausingStore is the real store, whose reads of the overrides and of the
// global thresholds a test can pause.
type pausingStore struct {
	*sqlite.DB
	storagetest.Gate
}

func (s *pausingStore) ActiveOverrides(ctx context.Context, now time.Time) ([]brownout.Override, error) {
	ovs, err := s.DB.ActiveOverrides(ctx, now)
	s.Pause()
	return ovs, err
}

func (s *pausingStore) GlobalThresholds(ctx context.Context) (levels.Thresholds, bool, error) {
	t, ok, err := s.DB.GlobalThresholds(ctx)
	s.Pause()
	return t, ok, err
}

// A reload of overrides or configuration that read the store before a
// local change committed must not undo the change: the leader would
// evaluate without an override it has just committed and push a level it
// does not hold, until the next reload.
func TestReloadRacingLocalChanges(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	st := &pausingStore{DB: openStore(t)}
	h := hub.New(hub.Config{Now: clk.Now}, nil)
	c := controller.New(controller.Config{Now: clk.Now}, st, nil, h, nil, nil)
	if err := c.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Ingest(ctx, report("api", "api-1", 10)); err != nil {
		t.Fatal(err)
	}
	c.Tick(ctx)

	op := brownout.Actor{ID: "tok_op", Name: "op"}
	l3 := 3
	st.Race(t, func() error { return c.ReloadOverrides(ctx) }, func() {
		if _, err := c.CreateOverride(ctx, controller.OverrideRequest{Service: "api", Level: &l3, Reason: "drill"}, op, false); err != nil {
			t.Error(err)
		}
	})
	if n := len(c.Overrides()); n != 1 {
		t.Errorf("after a reload racing the override: %d overrides held, want 1", n)
	}
	if err := c.Reevaluate(ctx, controller.TriggerOverride); err != nil {
		t.Fatal(err)
	}
	if lv, _ := level(t, c, "api"); lv != 3 {
		t.Errorf("level %d after the reload's reevaluation, want the override's 3", lv)
	}

	th := levels.Default()
	th.Cooldown = levels.Duration(3 * levels.DefaultCooldown)
	st.Race(t, func() error { return c.ReloadConfig(ctx) }, func() {
		if err := c.SetGlobalThresholds(ctx, th, op); err != nil {
			t.Error(err)
		}
	})
	if got := c.GlobalThresholds(); got.Cooldown != th.Cooldown {
		t.Errorf("after a reload racing the change: global cooldown %s, want %s", time.Duration(got.Cooldown), time.Duration(th.Cooldown))
	}
}
