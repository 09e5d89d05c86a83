package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/brownout-io/brownout/internal/storage/postgres/pgtest"
)

// startReplica runs one replica of a set sharing the PostgreSQL database
// dsn (fast leases, so that the test is short; the defaults are tested by
// the same code).
func startReplica(t *testing.T, dsn, id string) *controller {
	t.Helper()
	c := startController(t, "--data", dsn, "--replica-id", id, "--lease-ttl", "1s", "--drain", "0s")
	return c
}

// watcher is one subscriber: it acks every state, keeps the newest, and
// notes if a version ever goes back.
type watcher struct {
	name      string
	c         *websocket.Conn
	level     atomic.Int64
	version   atomic.Uint64
	wentBack  atomic.Bool
	closed    chan struct{}
	closeCode atomic.Int64
}

func watch(t *testing.T, ctx context.Context, base, token, svc, inst string) *watcher {
	t.Helper()
	w := &watcher{name: base + "/" + inst, c: dialSubscriber(t, ctx, base, token, svc, inst), closed: make(chan struct{})}
	w.level.Store(-1)
	go func() {
		defer close(w.closed)
		for {
			_, data, err := w.c.Read(ctx)
			if err != nil {
				w.closeCode.Store(int64(websocket.CloseStatus(err)))
				return
			}
			var f struct {
				Type    string `json:"type"`
				Version uint64 `json:"version"`
				Level   int    `json:"level"`
			}
			if json.Unmarshal(data, &f) != nil || f.Type != "state" {
				continue
			}
			if f.Version < w.version.Load() {
				w.wentBack.Store(true)
			}
			w.version.Store(f.Version)
			w.level.Store(int64(f.Level))
			_ = w.c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"type":"ack","version":%d}`, f.Version))
		}
	}()
	t.Cleanup(func() { w.c.CloseNow() })
	return w
}

// waitLevel waits until every watcher shows level, and returns how long
// that took.
func waitLevel(t *testing.T, what string, level int, within time.Duration, ws ...*watcher) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		done := true
		for _, w := range ws {
			if w.level.Load() != int64(level) {
				done = false
			}
		}
		if done {
			return time.Since(start)
		}
		if time.Since(start) > within {
			var got []string
			for _, w := range ws {
				got = append(got, fmt.Sprintf("%s=%d", w.name, w.level.Load()))
			}
			t.Fatalf("%s: not every subscriber at level %d within %s: %s", what, level, within, strings.Join(got, " "))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type replicaRow struct {
	ID     string `json:"id"`
	Leader bool   `json:"leader"`
	Term   int64  `json:"term"`
}

// leaderOf asks a replica who leads; "" while nobody does.
func leaderOf(t *testing.T, c *controller) (string, int64) {
	t.Helper()
	var out struct {
		Items []replicaRow `json:"items"`
	}
	st, data, err := newClient(c.url(), adminToken).do(context.Background(), http.MethodGet, "/api/v1/replicas", nil)
	if err != nil || st != 200 || json.Unmarshal(data, &out) != nil {
		return "", 0
	}
	for _, r := range out.Items {
		if r.Leader {
			return r.ID, r.Term
		}
	}
	return "", 0
}

// Three replica processes on one real PostgreSQL: an override made on a
// follower reaches the subscribers of all three; a token revoked on one
// replica closes its socket on another within a second; SIGKILL of the
// leader, and within 5 s another leads and the levels of subscribers on the
// survivors move again, driven by overrides and by reports sent to the
// survivors; then SIGKILL of every replica at once, and every acknowledged
// write is still there.
func TestReplicasSurviveLeaderLoss(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	rs := map[string]*controller{}
	for _, id := range []string{"r1", "r2", "r3"} {
		rs[id] = startReplica(t, dsn, id)
	}
	var leader string
	deadline := time.Now().Add(10 * time.Second)
	for leader == "" {
		if time.Now().After(deadline) {
			t.Fatal("no replica leads within 10 s of starting")
		}
		leader, _ = leaderOf(t, rs["r2"])
		time.Sleep(20 * time.Millisecond)
	}
	var followers []string
	for _, id := range []string{"r1", "r2", "r3"} {
		if id != leader {
			followers = append(followers, id)
		}
	}
	a, b := followers[0], followers[1]
	t.Logf("leader %s, followers %s %s", leader, a, b)

	// A subscriber on each replica; the service is created by the leader
	// when the first one subscribes through a follower.
	ws := map[string]*watcher{}
	for _, id := range []string{a, b, leader} {
		ws[id] = watch(t, ctx, rs[id].url(), adminToken, "pay", "pay-"+id)
	}
	waitLevel(t, "initial state on every replica", 0, 10*time.Second, ws[a], ws[b], ws[leader])

	// Acknowledged writes, checked after the crash of every replica.
	type acked struct{ id, via string }
	var ackedOverrides []acked
	override := func(via string, level int, reason string) string {
		t.Helper()
		var o struct {
			ID string `json:"id"`
		}
		newClient(rs[via].url(), adminToken).must(t, http.MethodPost, "/api/v1/overrides",
			map[string]any{"service": "pay", "level": level, "reason": reason}, 201, &o)
		ackedOverrides = append(ackedOverrides, acked{o.ID, via})
		return o.ID
	}

	// An override made on a follower reaches the subscribers of all three.
	first := override(a, 2, "drill on "+a)
	d := waitLevel(t, "override on "+a, 2, 5*time.Second, ws[a], ws[b], ws[leader])
	t.Logf("override on follower %s reached subscribers on all replicas in %v", a, d)

	// Revocation through one replica closes the token's socket on another.
	var tok struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	newClient(rs[a].url(), adminToken).must(t, http.MethodPost, "/api/v1/tokens",
		map[string]any{"scope": "sdk", "service": "pay", "name": "pay-sdk"}, 201, &tok)
	var sdkSub *watcher
	deadline = time.Now().Add(5 * time.Second)
	for sdkSub == nil {
		// The token is known on b once b has heard of its creation.
		c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(rs[b].url(), "http")+"/api/v1/subscribe?service=pay&instance=pay-sdk",
			&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok.Token}}, Subprotocols: []string{"brownout.v1"}})
		if err == nil {
			c.CloseNow()
			sdkSub = watch(t, ctx, rs[b].url(), tok.Token, "pay", "pay-sdk")
			break
		}
		if resp == nil || resp.StatusCode != http.StatusUnauthorized || time.Now().After(deadline) {
			t.Fatalf("token created on %s, subscribing on %s: %v", a, b, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitLevel(t, "sdk subscriber", 2, 5*time.Second, sdkSub)
	revoked := time.Now()
	newClient(rs[a].url(), adminToken).must(t, http.MethodDelete, "/api/v1/tokens/"+tok.ID, nil, 200, nil)
	select {
	case <-sdkSub.closed:
		t.Logf("token revoked on %s closed its socket on %s in %v (code %d)", a, b, time.Since(revoked), sdkSub.closeCode.Load())
		if sdkSub.closeCode.Load() != 4401 {
			t.Fatalf("revoked socket closed with %d, want 4401", sdkSub.closeCode.Load())
		}
	case <-time.After(time.Second):
		t.Fatalf("token revoked on %s: its socket on %s still open after 1 s", a, b)
	}

	// SIGKILL the leader. Another leads, and the survivors' subscribers see
	// levels move within 5 s: an override cleared and one made on the
	// survivors, and reports sent to the survivors for a second service.
	sig := map[string]*watcher{}
	for _, id := range []string{a, b} {
		sig[id] = watch(t, ctx, rs[id].url(), adminToken, "sig", "sig-"+id)
	}
	waitLevel(t, "second service", 0, 10*time.Second, sig[a], sig[b])
	rs[leader].kill()
	killed := time.Now()
	newClient(rs[b].url(), adminToken).must(t, http.MethodDelete, "/api/v1/overrides/"+first, nil, 200, nil)
	second := override(b, 1, "after the leader died")
	report := func(via string) {
		c := newClient(rs[via].url(), adminToken)
		for _, inst := range []string{"sig-1", "sig-2"} {
			st, body, err := c.do(ctx, http.MethodPost, "/api/v1/reports", map[string]any{
				"service": "sig", "instance": inst, "cpu_percent": 96, "memory_percent": 20, "requests": 100, "errors": 0})
			if err != nil || st != 202 {
				t.Errorf("report to %s: %d %s %v", via, st, body, err)
			}
		}
	}
	stop := make(chan struct{})
	var reporters sync.WaitGroup
	reporters.Add(1)
	go func() {
		defer reporters.Done()
		for {
			report(a)
			report(b)
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	waitLevel(t, "override after the leader's SIGKILL", 1, 5*time.Second-time.Since(killed), ws[a], ws[b])
	waitLevel(t, "reports after the leader's SIGKILL", 3, 5*time.Second-time.Since(killed), sig[a], sig[b])
	close(stop)
	reporters.Wait()
	failover := time.Since(killed)
	newLeader, term := leaderOf(t, rs[a])
	if newLeader == "" || newLeader == leader || term < 2 {
		t.Fatalf("after the SIGKILL of %s the replica set says %q leads in term %d", leader, newLeader, term)
	}
	t.Logf("leader %s SIGKILLed: %s leads (term %d); levels moved on the survivors within %v", leader, newLeader, term, failover)
	for _, w := range []*watcher{ws[a], ws[b], ws[leader], sig[a], sig[b]} {
		if w.wentBack.Load() {
			t.Errorf("subscriber %s saw a version go back", w.name)
		}
	}
	lastSeen := max(ws[a].version.Load(), ws[b].version.Load())

	// Every replica at once.
	var all sync.WaitGroup
	for _, id := range []string{a, b} {
		all.Add(1)
		go func() { defer all.Done(); rs[id].kill() }()
	}
	all.Wait()
	back := startReplica(t, dsn, "r4")
	api := newClient(back.url(), adminToken)
	var ovs struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	api.must(t, http.MethodGet, "/api/v1/overrides", nil, 200, &ovs)
	if len(ovs.Items) != 1 || ovs.Items[0].ID != second {
		t.Fatalf("active overrides after every replica was killed: %+v, want only %s", ovs.Items, second)
	}
	var audit struct {
		Items []struct {
			Action string `json:"action"`
			Target string `json:"target"`
		} `json:"items"`
	}
	api.must(t, http.MethodGet, "/api/v1/audit?limit=1000", nil, 200, &audit)
	for _, o := range ackedOverrides {
		found := false
		for _, e := range audit.Items {
			if e.Action == "override.create" && strings.Contains(e.Target, o.id) {
				found = true
			}
		}
		if !found {
			t.Errorf("override %s acknowledged by %s is not in the audit after the crash", o.id, o.via)
		}
	}
	var svc struct {
		Version uint64 `json:"version"`
		Level   int    `json:"level"`
	}
	api.must(t, http.MethodGet, "/api/v1/services/pay", nil, 200, &svc)
	if svc.Version < lastSeen || svc.Level != 1 {
		t.Fatalf("pay after the crash: v%d level %d, want at least v%d at level 1", svc.Version, svc.Level, lastSeen)
	}
	for _, c := range []*controller{rs[a], rs[b], rs[leader], back} {
		if strings.Contains(c.logText(), "panic") {
			t.Errorf("a replica's log mentions a panic:\n%s", c.logText())
		}
	}
}

// A service retired through one replica leaves every replica's views, the
// leader's included (which then stops evaluating it), and stays retired.
func TestRetiredServiceLeavesEveryReplica(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	rs := map[string]*controller{}
	ids := []string{"r1", "r2", "r3"}
	for _, id := range ids {
		rs[id] = startReplica(t, dsn, id)
	}
	var leader string
	for deadline := time.Now().Add(10 * time.Second); leader == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no replica leads within 10 s of starting")
		}
		leader, _ = leaderOf(t, rs["r1"])
	}
	var follower string
	for _, id := range ids {
		if id != leader {
			follower = id
			break
		}
	}
	// The service exists on every replica once a subscriber has made it.
	w := watch(t, ctx, rs[follower].url(), adminToken, "old", "old-1")
	waitLevel(t, "new service", 0, 10*time.Second, w)
	w.c.CloseNow()
	<-w.closed
	status := func(id string) int {
		st, _, err := newClient(rs[id].url(), adminToken).do(ctx, http.MethodGet, "/api/v1/services/old", nil)
		if err != nil {
			t.Fatalf("GET service on %s: %v", id, err)
		}
		return st
	}
	listed := func(id string) bool {
		var out struct {
			Items []struct {
				Name string `json:"name"`
			} `json:"items"`
		}
		newClient(rs[id].url(), adminToken).must(t, http.MethodGet, "/api/v1/services", nil, 200, &out)
		for _, it := range out.Items {
			if it.Name == "old" {
				return true
			}
		}
		return false
	}
	waitAll := func(what string, cond func(id string) bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for _, id := range ids {
			for !cond(id) {
				if time.Now().After(deadline) {
					t.Fatalf("%s: not so on %s within 5 s", what, id)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	waitAll("service known", func(id string) bool { return status(id) == 200 && listed(id) })

	// Retired through the other follower (not the one that has seen a
	// subscriber), so that every replica but one learns of it from the feed.
	via := leader
	for _, id := range ids {
		if id != leader && id != follower {
			via = id
		}
	}
	newClient(rs[via].url(), adminToken).must(t, http.MethodDelete, "/api/v1/services/old", nil, 200, nil)
	retired := time.Now()
	waitAll("service retired", func(id string) bool { return status(id) == 404 && !listed(id) })
	t.Logf("service retired through %s left every replica's views in %v", via, time.Since(retired))

	// Several evaluation ticks later the leader has not brought it back.
	time.Sleep(2500 * time.Millisecond)
	for _, id := range ids {
		if st := status(id); st != 404 || listed(id) {
			t.Fatalf("retired service back on %s (GET %d)", id, st)
		}
	}
}
