package postgres

import (
	"context"
	"errors"
	"io/fs"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
	"github.com/brownout-io/brownout/internal/storage/postgres/pgtest"
	"github.com/brownout-io/brownout/migrations"
)

// twoReplicas opens two stores on one fresh database, as two replicas
// would.
func twoReplicas(t *testing.T) (dsn string, a, b *DB) {
	t.Helper()
	dsn = pgtest.NewDatabase(t)
	a = mustOpenOpts(t, dsn, Options{Replica: "a"})
	b = mustOpenOpts(t, dsn, Options{Replica: "b"})
	return dsn, a, b
}

func mustOpenOpts(tb testing.TB, dsn string, o Options) *DB {
	tb.Helper()
	db, err := Open(context.Background(), dsn, o)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// feed collects what Listen delivers.
type feed struct {
	mu  sync.Mutex
	got []brownout.Change
	ch  chan brownout.Change
}

func listen(t *testing.T, db *DB) *feed {
	t.Helper()
	f := &feed{ch: make(chan brownout.Change, 1000)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- db.Listen(ctx, func(c brownout.Change) { f.ch <- c }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("listen: %v", err)
		}
	})
	return f
}

// next returns the next change of kind (skipping others), or fails.
func (f *feed) next(t *testing.T, kind string) brownout.Change {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case c := <-f.ch:
			if c.Kind == kind {
				return c
			}
		case <-timeout:
			t.Fatalf("no %q change within 10s", kind)
		}
	}
}

func state(name string, level int) brownout.StateChange {
	at := time.Unix(1_700_000_000, 0).UTC()
	return brownout.StateChange{State: brownout.ServiceState{Name: name, Level: level, ChangedAt: at, CreatedAt: at,
		Cause: brownout.CauseSignal, Detail: "cpu 93 ≥ 90"}}
}

// Every commit is announced to every replica after it commits, naming what
// changed; the first change of a listener is a resync.
func TestFeedAnnouncesCommits(t *testing.T) {
	t.Parallel()
	_, a, b := twoReplicas(t)
	ctx := context.Background()
	f := listen(t, b)
	if c := <-f.ch; c.Kind != brownout.ChangeResync {
		t.Fatalf("first change %+v, want resync", c)
	}
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("ready while listening: %v", err)
	}
	before := time.Now()
	batch := []brownout.StateChange{state("checkout", 2)}
	if err := a.SaveServiceStates(ctx, batch); err != nil {
		t.Fatal(err)
	}
	c := f.next(t, brownout.ChangeState)
	if c.Service != "checkout" || c.Version != 1 || c.Replica != "a" || c.At.Before(before.Add(-time.Second)) || c.More {
		t.Fatalf("state change %+v", c)
	}
	// Of a commit of several states, each but the last says more follow.
	if err := a.SaveServiceStates(ctx, []brownout.StateChange{state("cart", 1), state("search", 1), state("shop", 1)}); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"cart", "search", "shop"} {
		if c := f.next(t, brownout.ChangeState); c.Service != name || c.More != (i < 2) {
			t.Fatalf("state change %d of a commit of 3: %+v", i, c)
		}
	}
	// The receiver reads the committed state, detail included.
	st, err := b.LoadService(ctx, "checkout")
	if err != nil || st.Version != 1 || st.Level != 2 || st.Detail != "cpu 93 ≥ 90" {
		t.Fatalf("load service: %+v, %v", st, err)
	}
	if err := a.PutServiceThresholds(ctx, "checkout", storagetestThresholds(), brownout.AuditEntry{At: before, Actor: "x"}); err != nil {
		t.Fatal(err)
	}
	if c := f.next(t, brownout.ChangeConfig); c.Service != "checkout" {
		t.Fatalf("config change %+v", c)
	}
	if err := a.PutGlobalFlags(ctx, storagetestFlags(), brownout.AuditEntry{At: before, Actor: "x"}); err != nil {
		t.Fatal(err)
	}
	if c := f.next(t, brownout.ChangeConfig); c.Service != "" {
		t.Fatalf("global config change %+v", c)
	}
	o := brownout.Override{ID: "ovr_1", Service: "checkout", Level: 3, Reason: "r", Actor: "x", CreatedAt: before}
	if err := a.CreateOverrideWithStates(ctx, o, brownout.AuditEntry{At: before}, []brownout.StateChange{state("checkout", 3)}); err != nil {
		t.Fatal(err)
	}
	// The override says that the states it changed follow.
	if c := f.next(t, brownout.ChangeOverride); c.ID != "ovr_1" || !c.More {
		t.Fatalf("override change %+v", c)
	}
	if c := f.next(t, brownout.ChangeState); c.Version != 2 || c.More {
		t.Fatalf("override's state change %+v", c)
	}
	// Made on a follower, with no states, it says nothing follows.
	o2 := brownout.Override{ID: "ovr_2", Service: "cart", Level: 1, Reason: "r", Actor: "x", CreatedAt: before}
	if err := a.CreateOverrideWithStates(ctx, o2, brownout.AuditEntry{At: before}, nil); err != nil {
		t.Fatal(err)
	}
	if c := f.next(t, brownout.ChangeOverride); c.ID != "ovr_2" || c.More {
		t.Fatalf("override change without states %+v", c)
	}
	if _, err := a.ClearOverrideWithStates(ctx, "ovr_2", "x", before, brownout.AuditEntry{At: before}, nil); err != nil {
		t.Fatal(err)
	}
	if c := f.next(t, brownout.ChangeOverride); c.ID != "ovr_2" || c.More {
		t.Fatalf("clearing without states %+v", c)
	}
	tok := brownout.Token{ID: "tok_1", Name: "n", Scope: "sdk", Service: "checkout", Hash: []byte{1, 2}, CreatedAt: before}
	if err := a.CreateToken(ctx, tok, brownout.AuditEntry{At: before}); err != nil {
		t.Fatal(err)
	}
	if c := f.next(t, brownout.ChangeToken); c.ID != "tok_1" {
		t.Fatalf("token change %+v", c)
	}
	if _, err := a.RevokeToken(ctx, "tok_1", before, brownout.AuditEntry{At: before}); err != nil {
		t.Fatal(err)
	}
	if c := f.next(t, brownout.ChangeToken); c.ID != "tok_1" {
		t.Fatalf("revocation change %+v", c)
	}
	// A refused commit announces nothing.
	stale := state("checkout", 0)
	stale.State.Version = 1
	if err := a.SaveServiceStates(ctx, []brownout.StateChange{stale}); !errors.Is(err, storage.ErrStaleVersion) {
		t.Fatalf("stale save: %v", err)
	}
	if err := a.SaveServiceStates(ctx, []brownout.StateChange{state("checkout", 1)}); err != nil {
		t.Fatal(err)
	}
	if c := f.next(t, brownout.ChangeState); c.Version != 3 {
		t.Fatalf("after a refused commit: %+v, want version 3 next", c)
	}
}

// When the listener's connection dies, the receiver is told (lost), Ready
// says so, and after the listener is back it gets a resync first, then
// the changes committed from then on.
func TestFeedReconnectsAndResyncs(t *testing.T) {
	t.Parallel()
	dsn, a, b := twoReplicas(t)
	ctx := context.Background()
	f := listen(t, b)
	f.next(t, brownout.ChangeResync)
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN `+Channel+`'`); err != nil {
		t.Fatal(err)
	}
	f.next(t, brownout.ChangeLost)
	// Committed while the listener is down: only the resync can tell.
	if err := a.SaveServiceStates(ctx, []brownout.StateChange{state("checkout", 1)}); err != nil {
		t.Fatal(err)
	}
	f.next(t, brownout.ChangeResync)
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("ready after reconnect: %v", err)
	}
	if err := a.SaveServiceStates(ctx, []brownout.StateChange{state("checkout", 2)}); err != nil {
		t.Fatal(err)
	}
	// The listener may be back before the first commit, in which case
	// version 1 arrives as a notification after the resync: versions only
	// go up, and version 2 arrives.
	for last := uint64(0); ; {
		c := f.next(t, brownout.ChangeState)
		if c.Version < last || c.Version > 2 {
			t.Fatalf("after reconnect: %+v after version %d, want 1 then 2", c, last)
		}
		if c.Version == 2 {
			break
		}
		last = c.Version
	}
}

// One lease, one leader; the term grows with every new holder; a deposed
// leader's fenced commits store nothing.
func TestLeadershipAndFencing(t *testing.T) {
	t.Parallel()
	_, a, b := twoReplicas(t)
	ctx := context.Background()
	ta, err := a.Lead(ctx, "a", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lead(ctx, "b", time.Second); !errors.Is(err, brownout.ErrNotLeader) {
		t.Fatalf("second leader: %v, want ErrNotLeader", err)
	}
	if again, err := a.Lead(ctx, "a", 2*time.Second); err != nil || again != ta {
		t.Fatalf("renewal: term %d, %v; want term %d", again, err, ta)
	}
	fa := brownout.WithFence(ctx, brownout.Fence{Replica: "a", Term: ta})
	if err := a.SaveServiceStates(fa, []brownout.StateChange{state("checkout", 1)}); err != nil {
		t.Fatalf("fenced commit of the leader: %v", err)
	}
	// a pauses past its lease; b takes over.
	var tb int64
	deadline := time.Now().Add(10 * time.Second)
	for {
		tb, err = b.Lead(ctx, "b", 10*time.Second)
		if err == nil {
			break
		}
		if !errors.Is(err, brownout.ErrNotLeader) || time.Now().After(deadline) {
			t.Fatalf("takeover: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if tb <= ta {
		t.Fatalf("new term %d, old %d: want greater", tb, ta)
	}
	// a wakes up and commits under its old term: refused, nothing stored,
	// nothing announced.
	err = a.SaveServiceStates(fa, []brownout.StateChange{state("checkout", 3)})
	if !errors.Is(err, brownout.ErrFenced) {
		t.Fatalf("deposed commit: %v, want ErrFenced", err)
	}
	if code := brownout.ErrorCode(err); code != brownout.EUNAVAILABLE {
		t.Fatalf("deposed commit: code %q", code)
	}
	o := brownout.Override{ID: "ovr_1", Service: "checkout", Level: 3, Reason: "r", Actor: "x", CreatedAt: time.Now()}
	if err := a.CreateOverrideWithStates(fa, o, brownout.AuditEntry{}, []brownout.StateChange{state("checkout", 3)}); !errors.Is(err, brownout.ErrFenced) {
		t.Fatalf("deposed override commit: %v, want ErrFenced", err)
	}
	if _, err := a.GetOverride(ctx, "ovr_1"); brownout.ErrorCode(err) != brownout.ENOTFOUND {
		t.Fatalf("fenced override stored: %v", err)
	}
	st, err := a.LoadService(ctx, "checkout")
	if err != nil || st.Version != 1 || st.Level != 1 {
		t.Fatalf("after fenced commits: %+v, %v", st, err)
	}
	// The old leader cannot renew; the new one commits.
	if _, err := a.Lead(ctx, "a", time.Second); !errors.Is(err, brownout.ErrNotLeader) {
		t.Fatalf("deposed renewal: %v", err)
	}
	fb := brownout.WithFence(ctx, brownout.Fence{Replica: "b", Term: tb})
	if err := b.SaveServiceStates(fb, []brownout.StateChange{state("checkout", 2)}); err != nil {
		t.Fatal(err)
	}
	// Resign hands over at once.
	if err := b.Resign(ctx, "b", tb); err != nil {
		t.Fatal(err)
	}
	ta2, err := a.Lead(ctx, "a", time.Second)
	if err != nil || ta2 <= tb {
		t.Fatalf("after resign: term %d, %v; want > %d", ta2, err, tb)
	}
	if err := b.SaveServiceStates(fb, []brownout.StateChange{state("checkout", 0)}); !errors.Is(err, brownout.ErrFenced) {
		t.Fatalf("commit after resign: %v", err)
	}
	if err := b.Resign(ctx, "b", tb); err != nil {
		t.Fatalf("resigning a lost lease: %v", err)
	}
}

// Partials are taken once, oldest tick first; the replica set lists who
// beat recently.
func TestPartialsAndRegistry(t *testing.T) {
	t.Parallel()
	_, a, b := twoReplicas(t)
	ctx := context.Background()
	if err := a.PutPartials(ctx, "a", 11, map[string][]byte{"checkout": []byte("a11"), "search": []byte("a11s")}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutPartials(ctx, "b", 10, map[string][]byte{"checkout": []byte("b10")}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutPartials(ctx, "b", 10, map[string][]byte{"checkout": []byte("b10bis")}); err != nil {
		t.Fatal(err)
	}
	if err := a.PutPartials(ctx, "a", 12, map[string][]byte{"Bad Name": nil}); brownout.ErrorCode(err) != brownout.EBADREQUEST {
		t.Fatalf("bad service name: %v", err)
	}
	got, err := a.TakePartials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []brownout.Partial{
		{Replica: "b", Service: "checkout", Tick: 10, Body: []byte("b10bis")},
		{Replica: "a", Service: "checkout", Tick: 11, Body: []byte("a11")},
		{Replica: "a", Service: "search", Tick: 11, Body: []byte("a11s")},
	}
	if len(got) != len(want) {
		t.Fatalf("took %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Replica != want[i].Replica || got[i].Service != want[i].Service || got[i].Tick != want[i].Tick || string(got[i].Body) != string(want[i].Body) {
			t.Fatalf("partial %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if again, err := b.TakePartials(ctx); err != nil || len(again) != 0 {
		t.Fatalf("second take: %+v, %v; want nothing", again, err)
	}

	started := time.Unix(1_700_000_000, 0).UTC()
	if err := a.Heartbeat(ctx, brownout.Replica{ID: "a", Addr: "127.0.0.1:1", Leader: true, Term: 3, Subscribers: 7, LagMs: 1.5, StartedAt: started}); err != nil {
		t.Fatal(err)
	}
	if err := b.Heartbeat(ctx, brownout.Replica{ID: "b", Addr: "127.0.0.1:2", StartedAt: started}); err != nil {
		t.Fatal(err)
	}
	rs, err := b.Replicas(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].ID != "a" || !rs[0].Leader || rs[0].Term != 3 || rs[0].Subscribers != 7 || rs[0].LagMs != 1.5 ||
		!rs[0].StartedAt.Equal(started) || rs[0].SeenAt.IsZero() || rs[1].ID != "b" {
		t.Fatalf("replicas: %+v", rs)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := b.Heartbeat(ctx, brownout.Replica{ID: "b", StartedAt: started}); err != nil {
		t.Fatal(err)
	}
	if rs, err := a.Replicas(ctx, time.Second); err != nil || len(rs) != 1 || rs[0].ID != "b" {
		t.Fatalf("recent replicas: %+v, %v; want b only", rs, err)
	}
}

// Replicas starting together on an empty database migrate it once and all
// open; they share the database's epoch.
func TestConcurrentStartsMigrateOnce(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	const n = 5
	dbs := make([]*DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dbs[i], errs[i] = Open(context.Background(), dsn, Options{})
		}()
	}
	wg.Wait()
	ctx := context.Background()
	var epoch string
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		defer dbs[i].Close()
		e, err := dbs[i].Epoch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && e != epoch {
			t.Fatalf("replica %d has epoch %q, replica 0 %q", i, e, epoch)
		}
		epoch = e
	}
	var applied, distinct, epochs int
	if err := dbs[0].pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0`).Scan(&applied, &distinct); err != nil {
		t.Fatal(err)
	}
	if err := dbs[0].pool.QueryRow(ctx, `SELECT count(*) FROM meta WHERE key = 'epoch'`).Scan(&epochs); err != nil {
		t.Fatal(err)
	}
	files, err := fs.Glob(migrations.Postgres(), "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if applied != len(files) || distinct != len(files) || epochs != 1 {
		t.Fatalf("%d migrations applied (%d distinct) of %d files, %d epochs: want each once", applied, distinct, len(files), epochs)
	}
}

// When the database drops the store's connections, calls fail with
// ErrUnavailable (503), never corrupt anything, and work again on their
// own.
func TestUnavailableAndRecovery(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	db := mustOpenOpts(t, dsn, Options{})
	ctx := context.Background()
	if err := db.SaveServiceStates(ctx, []brownout.StateChange{state("checkout", 1)}); err != nil {
		t.Fatal(err)
	}
	// Nothing listens on this port: unavailable, not a 500.
	dead, err := Open(ctx, "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", Options{})
	if err == nil {
		dead.Close()
		t.Fatal("open on a dead port succeeded")
	}
	if !errors.Is(err, storage.ErrUnavailable) || brownout.ErrorCode(err) != brownout.EUNAVAILABLE {
		t.Fatalf("open on a dead port: %v, want ErrUnavailable", err)
	}
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	// The pool's connections are dead; a call may fail, as unavailable,
	// and the store comes back within a few tries.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := db.SaveServiceStates(ctx, []brownout.StateChange{state("checkout", 2)})
		if err == nil {
			break
		}
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Fatalf("after losing connections: %v, want ErrUnavailable", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := db.LoadService(ctx, "checkout")
	if err != nil || st.Level != 2 {
		t.Fatalf("after recovery: %+v, %v", st, err)
	}
}

// Retiring a service on one replica tells the others, which read it back
// retired.
func TestFeedAnnouncesRetirement(t *testing.T) {
	t.Parallel()
	_, a, b := twoReplicas(t)
	ctx := context.Background()
	if err := a.SaveServiceStates(ctx, []brownout.StateChange{state("gone", 1)}); err != nil {
		t.Fatal(err)
	}
	f := listen(t, b)
	f.next(t, brownout.ChangeResync)
	at := time.Unix(1_700_000_100, 0).UTC()
	if err := a.RetireService(ctx, "gone", at, brownout.AuditEntry{At: at, Actor: "x", Action: "service.retire", Target: "service:gone"}); err != nil {
		t.Fatal(err)
	}
	if c := f.next(t, brownout.ChangeRetire); c.Service != "gone" || c.Version != 1 {
		t.Fatalf("retirement change %+v, want gone at version 1", c)
	}
	st, err := b.LoadService(ctx, "gone")
	if err != nil || !st.RetiredAt.Equal(at) {
		t.Fatalf("read back: %+v, %v; want retired at %s", st, err, at)
	}
}

// A replica told of several state changes reads them in one query; a name
// with no state is left out.
func TestLoadServiceStates(t *testing.T) {
	t.Parallel()
	_, a, b := twoReplicas(t)
	ctx := context.Background()
	if err := a.SaveServiceStates(ctx, []brownout.StateChange{state("one", 1), state("two", 2), state("three", 3)}); err != nil {
		t.Fatal(err)
	}
	sts, err := b.LoadServiceStates(ctx, []string{"three", "one", "missing"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 2 || sts[0].Name != "one" || sts[0].Level != 1 || sts[1].Name != "three" || sts[1].Level != 3 ||
		sts[1].Version != 1 || sts[1].Detail != "cpu 93 ≥ 90" {
		t.Fatalf("states %+v, want one and three, detail included", sts)
	}
}

// A replica told of an override and the states it changed reads the
// active overrides and those states in one round trip.
func TestLoadOverridesAndStates(t *testing.T) {
	t.Parallel()
	_, a, b := twoReplicas(t)
	ctx := context.Background()
	at := time.Unix(1_700_000_000, 0).UTC()
	expired := at.Add(time.Minute)
	for _, o := range []brownout.Override{
		{ID: "ovr_a", Service: "*", Level: 2, Reason: "r", Actor: "x", CreatedAt: at},
		{ID: "ovr_b", Service: "one", Level: 3, Reason: "r", Actor: "x", CreatedAt: at.Add(time.Second), ExpiresAt: &expired},
		{ID: "ovr_c", Service: "two", Level: 1, Reason: "r", Actor: "x", CreatedAt: at.Add(2 * time.Second)},
	} {
		if err := a.CreateOverrideWithStates(ctx, o, brownout.AuditEntry{At: at}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.ClearOverrideWithStates(ctx, "ovr_c", "x", at.Add(3*time.Second), brownout.AuditEntry{At: at}, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.SaveServiceStates(ctx, []brownout.StateChange{state("one", 1), state("two", 2), state("three", 3)}); err != nil {
		t.Fatal(err)
	}
	// At now, ovr_b has expired and ovr_c is cleared.
	ovs, sts, err := b.LoadOverridesAndStates(ctx, expired.Add(time.Second), []string{"three", "one", "missing"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ovs) != 1 || ovs[0].ID != "ovr_a" {
		t.Fatalf("overrides %+v, want ovr_a alone", ovs)
	}
	if len(sts) != 2 || sts[0].Name != "one" || sts[1].Name != "three" || sts[1].Level != 3 || sts[1].Detail != "cpu 93 ≥ 90" {
		t.Fatalf("states %+v, want one and three, detail included", sts)
	}
	// Before ovr_b expires, both are active, oldest first; no names, no states.
	ovs, sts, err = b.LoadOverridesAndStates(ctx, at.Add(30*time.Second), nil)
	if err != nil || len(ovs) != 2 || ovs[0].ID != "ovr_a" || ovs[1].ID != "ovr_b" || len(sts) != 0 {
		t.Fatalf("overrides %+v, states %+v, err %v: want ovr_a and ovr_b, no states", ovs, sts, err)
	}
}
