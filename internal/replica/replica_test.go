package replica

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
)

// feedStore is a store whose change feed the test drives; the rest of the
// replica's store answers without effect.
type feedStore struct {
	changes chan brownout.Change
	// handled counts the changes the replica has finished handling: a
	// send on changes returns when the change is taken, before it is.
	handled atomic.Int64
}

func (s *feedStore) Listen(ctx context.Context, fn func(brownout.Change)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ch := <-s.changes:
			fn(ch)
			s.handled.Add(1)
		}
	}
}
func (s *feedStore) Lead(context.Context, string, time.Duration) (int64, error) {
	return 0, brownout.ErrNotLeader
}
func (s *feedStore) Resign(context.Context, string, int64) error                         { return nil }
func (s *feedStore) PutPartials(context.Context, string, int64, map[string][]byte) error { return nil }
func (s *feedStore) TakePartials(context.Context) ([]brownout.Partial, error)            { return nil, nil }
func (s *feedStore) Heartbeat(context.Context, brownout.Replica) error                   { return nil }
func (s *feedStore) Replicas(context.Context, time.Duration) ([]brownout.Replica, error) {
	return nil, nil
}
func (s *feedStore) LoadService(context.Context, string) (brownout.ServiceState, error) {
	return brownout.ServiceState{}, errors.New("not here")
}
func (s *feedStore) LoadServiceStates(context.Context, []string) ([]brownout.ServiceState, error) {
	return nil, errors.New("not here")
}
func (s *feedStore) LoadOverridesAndStates(context.Context, time.Time, []string) ([]brownout.Override, []brownout.ServiceState, error) {
	return nil, nil, errors.New("not here")
}

// flakyController fails its first `fail` re-reads, as a store only half
// back after an outage does.
type flakyController struct {
	fail    atomic.Int32
	resyncs atomic.Int32
}

func (c *flakyController) Leading() bool                              { return false }
func (c *flakyController) Lead(context.Context, brownout.Fence) error { return nil }
func (c *flakyController) Follow()                                    {}
func (c *flakyController) Resync(context.Context) error {
	c.resyncs.Add(1)
	if c.fail.Add(-1) >= 0 {
		return errors.New("database unavailable")
	}
	return nil
}
func (c *flakyController) ReloadConfig(context.Context) error    { return nil }
func (c *flakyController) ReloadOverrides(context.Context) error { return nil }
func (c *flakyController) ReloadOverridesWith(ctx context.Context, load func(context.Context, time.Time) ([]brownout.Override, error)) error {
	_, err := load(ctx, time.Now())
	return err
}
func (c *flakyController) Reevaluate(context.Context, string) error { return nil }
func (c *flakyController) ApplyState(brownout.ServiceState)         {}
func (c *flakyController) HasVersion(string, uint64) bool           { return false }
func (c *flakyController) TakeFolds() map[string][]byte             { return nil }
func (c *flakyController) MergePartials(context.Context, []brownout.Partial) error {
	return nil
}
func (c *flakyController) FlushRequested() <-chan struct{} { return nil }

type noTokens struct{}

func (noTokens) Reload(context.Context) error { return nil }

type noSubs struct{}

func (noSubs) Subscribers() int { return 0 }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReadyAfterFailedResync: when the re-read that follows a feed
// reconnect fails, the replica is not ready, and it retries the re-read
// while the feed stays up instead of waiting for the feed to drop again.
func TestReadyAfterFailedResync(t *testing.T) {
	st := &feedStore{changes: make(chan brownout.Change)}
	ctl := &flakyController{}
	ctl.fail.Store(2)
	r := New(Config{ID: "r1", Ship: 20 * time.Millisecond, Heartbeat: time.Hour, LeaseTTL: time.Hour}, st, ctl, noTokens{}, noSubs{}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })

	if err := r.Ready(); !errors.Is(err, ErrFeedDown) {
		t.Fatalf("before the feed connects: Ready() = %v, want ErrFeedDown", err)
	}
	st.changes <- brownout.Change{Kind: brownout.ChangeResync}
	waitFor(t, "the first re-read", func() bool { return ctl.resyncs.Load() >= 1 })
	if err := r.Ready(); err == nil {
		t.Fatal("ready although the re-read after the reconnect failed")
	}
	waitFor(t, "ready after the retried re-reads", func() bool { return r.Ready() == nil })
	if n := ctl.resyncs.Load(); n != 3 {
		t.Fatalf("%d re-reads, want 3 (two failed, one succeeded)", n)
	}

	// Lost, then a reconnect whose re-read succeeds at once.
	st.changes <- brownout.Change{Kind: brownout.ChangeLost}
	waitFor(t, "not ready after the feed is lost", func() bool { return errors.Is(r.Ready(), ErrFeedDown) })
	st.changes <- brownout.Change{Kind: brownout.ChangeResync}
	waitFor(t, "ready after the second reconnect", func() bool { return r.Ready() == nil })
}

// TestStaleResyncDoesNotMarkReady: a retried re-read that completes after
// the feed dropped again leaves the replica not ready.
func TestStaleResyncDoesNotMarkReady(t *testing.T) {
	r := New(Config{ID: "r1"}, &feedStore{}, &flakyController{}, noTokens{}, noSubs{}, nil, nil)
	gen := r.setFeed(true)
	r.setFeed(false)
	r.markSynced(gen)
	if err := r.Ready(); !errors.Is(err, ErrFeedDown) {
		t.Fatalf("Ready() = %v, want ErrFeedDown", err)
	}
	old := r.setFeed(true)
	r.setFeed(true) // reconnected again before the first re-read finished
	r.markSynced(old)
	if err := r.Ready(); !errors.Is(err, ErrCatchingUp) {
		t.Fatalf("Ready() = %v, want ErrCatchingUp", err)
	}
}

// batchStore answers state reads; its first read waits for release, so
// that the changes announced meanwhile pile up.
type batchStore struct {
	feedStore
	release chan struct{}
	mu      sync.Mutex
	reads   [][]string
}

func (s *batchStore) read(names []string) []brownout.ServiceState {
	s.mu.Lock()
	first := len(s.reads) == 0
	s.reads = append(s.reads, names)
	s.mu.Unlock()
	if first {
		<-s.release
	}
	var out []brownout.ServiceState
	for _, n := range names {
		out = append(out, brownout.ServiceState{Name: n, Version: 1})
	}
	return out
}

func (s *batchStore) LoadService(_ context.Context, name string) (brownout.ServiceState, error) {
	return s.read([]string{name})[0], nil
}

func (s *batchStore) LoadServiceStates(_ context.Context, names []string) ([]brownout.ServiceState, error) {
	return s.read(names), nil
}

// LoadOverridesAndStates records its read as "overrides" followed by the
// names.
func (s *batchStore) LoadOverridesAndStates(_ context.Context, _ time.Time, names []string) ([]brownout.Override, []brownout.ServiceState, error) {
	sts := s.read(append([]string{"overrides"}, names...))[1:]
	return []brownout.Override{{ID: "ovr_1", Service: "*", Level: 2}}, sts, nil
}

// applyController records the states applied and, at a configuration
// reload, how many had been applied.
type applyController struct {
	flakyController
	mu      sync.Mutex
	applied []string
	// order: the states applied, the overrides re-read ("N overrides")
	// and the evaluations, in order.
	order         []string
	atReload      int
	reloadedCount atomic.Int32
	// held: HasVersion says every state is held (the replica's own
	// commits).
	held bool
}

func (c *applyController) HasVersion(string, uint64) bool { return c.held }

func (c *applyController) ApplyState(st brownout.ServiceState) {
	c.mu.Lock()
	c.applied = append(c.applied, st.Name)
	c.order = append(c.order, st.Name)
	c.mu.Unlock()
}

func (c *applyController) ReloadOverridesWith(ctx context.Context, load func(context.Context, time.Time) ([]brownout.Override, error)) error {
	ovs, err := load(ctx, time.Now())
	c.mu.Lock()
	c.order = append(c.order, fmt.Sprintf("%d overrides", len(ovs)))
	c.mu.Unlock()
	return err
}

func (c *applyController) Reevaluate(context.Context, string) error {
	c.mu.Lock()
	c.order = append(c.order, "reevaluate")
	c.mu.Unlock()
	return nil
}

func (c *applyController) ReloadConfig(context.Context) error {
	c.mu.Lock()
	c.atReload = len(c.applied)
	c.mu.Unlock()
	c.reloadedCount.Add(1)
	return nil
}

// runFeedReplica runs a replica over st and ctl until the test ends; only
// its change feed does anything (every interval is an hour).
func runFeedReplica(t *testing.T, st *batchStore, ctl *applyController) {
	t.Helper()
	r := New(Config{ID: "r1", Ship: time.Hour, Heartbeat: time.Hour, LeaseTTL: time.Hour}, st, ctl, noTokens{}, noSubs{}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// TestStateChangesReadTogether: state changes announced while a read is
// under way are read together in one query, and a configuration change
// announced after them is applied only once they are.
func TestStateChangesReadTogether(t *testing.T) {
	st := &batchStore{feedStore: feedStore{changes: make(chan brownout.Change)}, release: make(chan struct{})}
	ctl := &applyController{}
	runFeedReplica(t, st, ctl)

	st.changes <- brownout.Change{Kind: brownout.ChangeResync}
	names := []string{"s0", "s1", "s2", "s3", "s4", "s5"}
	for _, n := range names {
		st.changes <- brownout.Change{Kind: brownout.ChangeState, Service: n, Version: 1}
	}
	// The last state may still be on its way into the queue when its
	// send returns; the first read is held until every one is queued.
	waitFor(t, "every state queued", func() bool { return st.handled.Load() == int64(1+len(names)) })
	waitFor(t, "the first read", func() bool { st.mu.Lock(); defer st.mu.Unlock(); return len(st.reads) == 1 })
	close(st.release)
	st.changes <- brownout.Change{Kind: brownout.ChangeConfig}
	waitFor(t, "the configuration reload", func() bool { return ctl.reloadedCount.Load() == 1 })

	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	if ctl.atReload != len(names) {
		t.Fatalf("%d of %d states applied before the configuration change that followed them", ctl.atReload, len(names))
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	// The first read takes what was queued when the reader woke; the
	// second, every state announced while the first was under way.
	if len(st.reads) > 2 {
		t.Fatalf("reads %v: want at most 2 (the first, then every state announced during it)", st.reads)
	}
}

// TestCommitReadAtOnce: the state changes of one commit (each but the last
// announced with More) are read in one query, at the last of them.
func TestCommitReadAtOnce(t *testing.T) {
	st := &batchStore{feedStore: feedStore{changes: make(chan brownout.Change)}, release: make(chan struct{})}
	close(st.release)
	ctl := &applyController{}
	runFeedReplica(t, st, ctl)

	st.changes <- brownout.Change{Kind: brownout.ChangeResync}
	names := []string{"s0", "s1", "s2", "s3", "s4", "s5"}
	for i, n := range names {
		st.changes <- brownout.Change{Kind: brownout.ChangeState, Service: n, Version: 1, More: i < len(names)-1}
		time.Sleep(time.Millisecond) // a reader woken early would read some alone
	}
	waitFor(t, "every state applied", func() bool { ctl.mu.Lock(); defer ctl.mu.Unlock(); return len(ctl.applied) == len(names) })
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.reads) != 1 || len(st.reads[0]) != len(names) {
		t.Fatalf("reads %v: want one read of all %d", st.reads, len(names))
	}
}

// resyncedFeedReplica runs a replica whose reads answer at once, past its
// first resync; ctl.order starts empty. held: the controller holds every
// state announced.
func resyncedFeedReplica(t *testing.T, held bool) (*batchStore, *applyController) {
	t.Helper()
	st := &batchStore{feedStore: feedStore{changes: make(chan brownout.Change)}, release: make(chan struct{})}
	close(st.release)
	ctl := &applyController{held: held}
	runFeedReplica(t, st, ctl)
	st.changes <- brownout.Change{Kind: brownout.ChangeResync}
	waitFor(t, "the resync handled", func() bool { return st.handled.Load() == 1 })
	ctl.mu.Lock()
	ctl.order = nil // the resync's evaluation
	ctl.mu.Unlock()
	return st, ctl
}

// TestOverrideReadWithItsStates: an override announced with the states it
// changed (More) is read in the same read as those states, and applied
// before them; then a leader evaluates.
func TestOverrideReadWithItsStates(t *testing.T) {
	st, ctl := resyncedFeedReplica(t, false)
	st.changes <- brownout.Change{Kind: brownout.ChangeOverride, ID: "ovr_1", Service: "*", More: true}
	names := []string{"s0", "s1", "s2"}
	for i, n := range names {
		st.changes <- brownout.Change{Kind: brownout.ChangeState, Service: n, Version: 1, More: i < len(names)-1}
		time.Sleep(time.Millisecond) // a reader woken early would read some alone
	}
	want := []string{"1 overrides", "s0", "s1", "s2", "reevaluate"}
	waitFor(t, "the override and its states applied", func() bool { ctl.mu.Lock(); defer ctl.mu.Unlock(); return len(ctl.order) == len(want) })
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	// The states in any order (the store sorts them; this one does not),
	// between the overrides and the evaluation.
	got := slices.Clone(ctl.order)
	slices.Sort(got[1 : len(got)-1])
	if !slices.Equal(got, want) {
		t.Fatalf("applied %v, want %v", ctl.order, want)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.reads) == 1 {
		slices.Sort(st.reads[0][1:])
	}
	if len(st.reads) != 1 || !slices.Equal(st.reads[0], []string{"overrides", "s0", "s1", "s2"}) {
		t.Fatalf("reads %v: want one read of the overrides and all %d states", st.reads, len(names))
	}
}

// TestOverrideWithStatesHeldReadsOverrides: when the replica already holds
// every state the override changed (its own commit), the overrides are
// still re-read, without the states, and a leader evaluates, once the
// commit's last state is announced.
func TestOverrideWithStatesHeldReadsOverrides(t *testing.T) {
	st, ctl := resyncedFeedReplica(t, true)
	st.changes <- brownout.Change{Kind: brownout.ChangeOverride, ID: "ovr_1", Service: "*", More: true}
	st.changes <- brownout.Change{Kind: brownout.ChangeState, Service: "s0", Version: 1, More: true}
	st.changes <- brownout.Change{Kind: brownout.ChangeState, Service: "s1", Version: 1}
	want := []string{"1 overrides", "reevaluate"}
	waitFor(t, "the overrides re-read", func() bool { ctl.mu.Lock(); defer ctl.mu.Unlock(); return len(ctl.order) == len(want) })
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	if !slices.Equal(ctl.order, want) {
		t.Fatalf("applied %v, want %v", ctl.order, want)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.reads) != 1 || !slices.Equal(st.reads[0], []string{"overrides"}) {
		t.Fatalf("reads %v: want one read, of the overrides alone", st.reads)
	}
}
