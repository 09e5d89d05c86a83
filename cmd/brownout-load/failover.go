package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FailoverResult is a run of leader kills over a replica set.
type FailoverResult struct {
	Replicas    int    `json:"replicas"`
	Subscribers int    `json:"subscribers"`
	Kills       int    `json:"kills"`
	LeaseTTL    string `json:"lease_ttl"`
	// FirstMove: SIGKILL of the leader until a subscriber on a survivor
	// receives a new version (a new leader committed). AllMoved: until every
	// subscriber on the survivors has one. Named: until a survivor's
	// replica set names another leader in a newer term.
	FirstMove *Spread `json:"first_move"`
	AllMoved  *Spread `json:"all_moved"`
	Named     *Spread `json:"leader_named"`
	// Writes made on the survivors throughout: overrides created and
	// cleared, acknowledged or not.
	WritesAcked  int `json:"writes_acked"`
	WritesFailed int `json:"writes_failed"`
	// After every replica was killed at once and one restarted: acked
	// writes missing from the database, and versions that went back.
	LostWrites    int      `json:"lost_writes"`
	VersionsBack  int64    `json:"versions_back"`
	StaleServices int      `json:"services_behind_subscribers"`
	Errors        []string `json:"errors,omitempty"`
}

// Spread is min / median / max in milliseconds.
type Spread struct {
	N        int     `json:"n"`
	MinMs    float64 `json:"min_ms"`
	MedianMs float64 `json:"median_ms"`
	MaxMs    float64 `json:"max_ms"`
}

func spreadOf(ds []time.Duration) *Spread {
	if len(ds) == 0 {
		return &Spread{}
	}
	return &Spread{N: len(ds), MinMs: ms(pct(ds, 0)), MedianMs: ms(pct(ds, 50)), MaxMs: ms(pct(ds, 100))}
}

// replicaSet is the replicas of a failover run, by index.
type replicaSet struct {
	mu    sync.Mutex
	procs []*controllerProc
	alive []bool
	token string
}

func (r *replicaSet) survivors() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for i, ok := range r.alive {
		if ok {
			out = append(out, i)
		}
	}
	return out
}

func (r *replicaSet) setAlive(i int, ok bool) {
	r.mu.Lock()
	r.alive[i] = ok
	r.mu.Unlock()
}

// leader asks replica via who leads and in which term (-1: nobody).
func (r *replicaSet) leader(ctx context.Context, via int) (int, int64) {
	var rs struct {
		Items []struct {
			ID     string `json:"id"`
			Leader bool   `json:"leader"`
			Term   int64  `json:"term"`
		} `json:"items"`
	}
	if _, err := newAPI(r.procs[via].url(), r.token).do(ctx, http.MethodGet, "/api/v1/replicas", nil, &rs); err != nil {
		return -1, 0
	}
	for _, it := range rs.Items {
		if it.Leader {
			var i int
			if _, err := fmt.Sscanf(it.ID, "r%d", &i); err == nil && i >= 1 && i <= len(r.procs) {
				return i - 1, it.Term
			}
		}
	}
	return -1, 0
}

// writer makes and clears a global override through a random survivor
// every few hundred milliseconds, and remembers what was acknowledged.
type writer struct {
	set    *replicaSet
	rnd    *rand.Rand
	active string // override acknowledged as created and not yet as cleared
	level  int
	acked  atomic.Int64
	failed atomic.Int64
	// cleared are acknowledged deletions, created acknowledged creations.
	mu      sync.Mutex
	created []string
	cleared []string
}

func (w *writer) step(ctx context.Context) {
	alive := w.set.survivors()
	if len(alive) == 0 {
		return
	}
	a := newAPI(w.set.procs[alive[w.rnd.IntN(len(alive))]].url(), w.set.token)
	a.hc.Timeout = 5 * time.Second
	if w.active == "" {
		w.level = 1 + w.level%3
		var ov struct {
			ID string `json:"id"`
		}
		body := map[string]any{"service": "*", "level": w.level, "reason": "failover drill"}
		if _, err := a.do(ctx, http.MethodPost, "/api/v1/overrides", body, &ov); err != nil || ov.ID == "" {
			w.failed.Add(1)
			return
		}
		w.mu.Lock()
		w.active, w.created = ov.ID, append(w.created, ov.ID)
		w.mu.Unlock()
	} else {
		if _, err := a.do(ctx, http.MethodDelete, "/api/v1/overrides/"+w.active, nil, nil); err != nil {
			w.failed.Add(1)
			return
		}
		w.mu.Lock()
		w.cleared, w.active = append(w.cleared, w.active), ""
		w.mu.Unlock()
	}
	w.acked.Add(1)
}

func runFailover(ctx context.Context, o *options, res *Results, log io.Writer) error {
	n := o.subs[0]
	r := &FailoverResult{Replicas: o.replicas, Subscribers: n, Kills: o.kills, LeaseTTL: "2s (default)"}
	for i, a := range o.extra {
		if a == "--lease-ttl" && i+1 < len(o.extra) {
			r.LeaseTTL = o.extra[i+1]
		} else if v, ok := strings.CutPrefix(a, "--lease-ttl="); ok {
			r.LeaseTTL = v
		}
	}
	res.Failover = r
	if err := failover(ctx, o, n, r, log); err != nil {
		r.Errors = append(r.Errors, err.Error())
		return err
	}
	return nil
}

func failover(ctx context.Context, o *options, n int, r *FailoverResult, log io.Writer) error {
	t, err := openTarget(ctx, o, n, "failover")
	if err != nil {
		return err
	}
	defer t.cleanup()
	set := &replicaSet{procs: t.procs, alive: make([]bool, len(t.procs)), token: t.token}
	for i := range set.alive {
		set.alive[i] = true
	}
	ctx, cancel := context.WithCancel(ctx)
	f := newFleet(t.wsBase(), t.services, t.tokens, n)
	f.spread(t.wsBases())
	f.reconnect, f.backoff = true, backoffConfig{initial: 200 * time.Millisecond, max: 2 * time.Second, stable: 30 * time.Second}
	defer func() {
		cancel()
		f.closeAll()
	}()
	o.logf(log, "failover: connecting %d subscribers over %d replicas", n, len(t.procs))
	if failed, _ := f.connectAll(ctx, o.par); failed > 0 {
		return fmt.Errorf("%d of %d connections failed", failed, n)
	}
	if !f.waitConverged(ctx, 30*time.Second) {
		return errors.New("subscribers did not receive the first state")
	}

	w := &writer{set: set, rnd: rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))}
	wctx, stopWriter := context.WithCancel(ctx)
	var writers sync.WaitGroup
	defer func() { stopWriter(); writers.Wait() }()
	writers.Add(1)
	go func() {
		defer writers.Done()
		for wctx.Err() == nil {
			w.step(wctx)
			select {
			case <-wctx.Done():
			case <-time.After(time.Duration(150+w.rnd.IntN(200)) * time.Millisecond):
			}
		}
	}()

	var first, all, named []time.Duration
	for k := 1; k <= o.kills && ctx.Err() == nil; k++ {
		via := set.survivors()[0]
		lead, term := -1, int64(0)
		for deadline := time.Now().Add(15 * time.Second); lead < 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			lead, term = set.leader(ctx, via)
		}
		if lead < 0 {
			return fmt.Errorf("kill %d: no replica leads", k)
		}
		set.setAlive(lead, false)
		o.logf(log, "failover %d: SIGKILL leader r%d (term %d)", k, lead+1, term)
		killed := time.Now()
		t.procs[lead].kill()
		// The newest version of each service any subscriber has when the
		// leader is gone: only a commit after the kill moves past it.
		before := make([]uint64, len(t.services))
		for _, s := range f.subs {
			before[s.svc] = max(before[s.svc], s.version.Load())
		}
		var firstAt, allAt, namedAt time.Duration
		for deadline := killed.Add(30 * time.Second); time.Now().Before(deadline) && (allAt == 0 || namedAt == 0) && ctx.Err() == nil; time.Sleep(5 * time.Millisecond) {
			moved, waiting := 0, 0
			for _, s := range f.subs {
				if s.replica == lead {
					continue
				}
				if s.version.Load() > before[s.svc] {
					moved++
				} else {
					waiting++
				}
			}
			if moved > 0 && firstAt == 0 {
				firstAt = time.Since(killed)
			}
			if waiting == 0 && allAt == 0 {
				allAt = time.Since(killed)
			}
			if namedAt == 0 {
				if l, tm := set.leader(ctx, set.survivors()[0]); l >= 0 && l != lead && tm > term {
					namedAt = time.Since(killed)
				}
			}
		}
		if allAt == 0 || namedAt == 0 {
			return fmt.Errorf("kill %d: levels did not move on the survivors within 30 s (first move %s, leader named %s)", k, firstAt, namedAt)
		}
		first, all, named = append(first, firstAt), append(all, allAt), append(named, namedAt)
		o.logf(log, "failover %d: first subscriber moved after %s, every survivor's after %s; new leader named after %s",
			k, firstAt.Round(time.Millisecond), allAt.Round(time.Millisecond), namedAt.Round(time.Millisecond))
		// The killed replica comes back (as a follower) before the next kill.
		if err := t.procs[lead].start(ctx); err != nil {
			return fmt.Errorf("restart r%d: %w", lead+1, err)
		}
		set.setAlive(lead, true)
		if !f.waitConverged(ctx, 30*time.Second) {
			return fmt.Errorf("after kill %d: subscribers did not converge again", k)
		}
		pause(ctx, k)
	}
	stopWriter()
	writers.Wait()
	r.FirstMove, r.AllMoved, r.Named = spreadOf(first), spreadOf(all), spreadOf(named)
	r.WritesAcked, r.WritesFailed = int(w.acked.Load()), int(w.failed.Load())
	r.VersionsBack = f.wentBack.Load()
	seen := make([]uint64, len(t.services))
	for _, s := range f.subs {
		seen[s.svc] = max(seen[s.svc], s.version.Load())
	}

	// Every replica at once, then one back: every acknowledged write is there.
	o.logf(log, "failover: SIGKILL every replica at once")
	var wg sync.WaitGroup
	for _, p := range t.procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.kill() }()
	}
	wg.Wait()
	if err := t.procs[0].start(ctx); err != nil {
		return fmt.Errorf("restart after killing every replica: %w", err)
	}
	a := newAPI(t.procs[0].url(), t.token)
	lost, err := lostWrites(ctx, a, w)
	if err != nil {
		return err
	}
	r.LostWrites = lost
	for i, s := range t.services {
		v, err := a.serviceVersion(ctx, s)
		if err != nil {
			return err
		}
		if v < seen[i] {
			r.StaleServices++
		}
	}
	o.logf(log, "failover: %d kills; first move %s, all moved %s, leader named %s (min/median/max ms); %d writes acked, %d failed, %d lost; %d versions went back",
		len(first), spreadText(r.FirstMove), spreadText(r.AllMoved), spreadText(r.Named), r.WritesAcked, r.WritesFailed, r.LostWrites, r.VersionsBack)
	var errs []error
	if r.LostWrites > 0 {
		errs = append(errs, fmt.Errorf("%d acknowledged writes lost", r.LostWrites))
	}
	if r.VersionsBack > 0 || r.StaleServices > 0 {
		errs = append(errs, fmt.Errorf("versions went back: %d frames, %d services behind their subscribers", r.VersionsBack, r.StaleServices))
	}
	return errors.Join(errs...)
}

func spreadText(s *Spread) string {
	return fmt.Sprintf("%.0f/%.0f/%.0f", s.MinMs, s.MedianMs, s.MaxMs)
}

// lostWrites counts acknowledged writes that the database does not show:
// the override last acknowledged as created must be the only one active,
// and every acknowledged creation and clearing must be in the audit.
func lostWrites(ctx context.Context, a *api, w *writer) (int, error) {
	var ovs struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if _, err := a.do(ctx, http.MethodGet, "/api/v1/overrides", nil, &ovs); err != nil {
		return 0, err
	}
	var active []string
	for _, it := range ovs.Items {
		active = append(active, it.ID)
	}
	lost := 0
	if w.active != "" && !slices.Contains(active, w.active) {
		lost++
	}
	for _, id := range w.cleared {
		if slices.Contains(active, id) {
			lost++ // a clearing was acknowledged, yet it is active
		}
	}
	type entry struct {
		Action string `json:"action"`
		Target string `json:"target"`
	}
	var entries []entry
	for cursor := ""; ; {
		var page struct {
			Items      []entry `json:"items"`
			NextCursor string  `json:"next_cursor"`
		}
		if _, err := a.do(ctx, http.MethodGet, "/api/v1/audit?limit=1000&cursor="+url.QueryEscape(cursor), nil, &page); err != nil {
			return lost, err
		}
		entries = append(entries, page.Items...)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	has := func(action, id string) bool {
		for _, e := range entries {
			if e.Action == action && strings.Contains(e.Target, id) {
				return true
			}
		}
		return false
	}
	for _, id := range w.created {
		if !has("override.create", id) {
			lost++
		}
	}
	for _, id := range w.cleared {
		if !has("override.clear", id) {
			lost++
		}
	}
	return lost, nil
}

func (s *Spread) orZero() *Spread {
	if s == nil {
		return &Spread{}
	}
	return s
}
