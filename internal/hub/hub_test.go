package hub_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/hub"
)

func snap(service string, v uint64) hub.Snapshot {
	return hub.Snapshot{Service: service, Epoch: "e1", Version: v, Data: fmt.Appendf(nil, `{"type":"state","version":%d}`, v)}
}

// Two feeds (a local commit and a replica's notification) publish the same
// versions interleaved and out of order, under -race, to many readers and
// one stalled subscriber: publish never blocks, no reader ever sees a
// version go back, all end on the newest, and the stalled one holds only it.
func TestRacingFeedsNeverGoBack(t *testing.T) {
	h := hub.New(hub.Config{}, nil)
	h.Publish(snap("svc", 1))
	stalled, err := h.Subscribe("svc", "stalled", "tok", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	const readers, versions = 200, 500
	type result struct {
		last uint64
		bad  bool
	}
	results := make([]result, readers)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	subs := make([]*hub.Subscriber, readers)
	for i := range readers {
		sub, err := h.Subscribe("svc", fmt.Sprintf("r%d", i), "tok", 0, "")
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = sub
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-sub.Ready():
					m := sub.Take()
					if m == nil {
						continue
					}
					if m.Version < results[i].last {
						results[i].bad = true
					}
					results[i].last = m.Version
					h.Ack(sub, m.Version)
				case <-stop:
					return
				}
			}
		}()
	}
	var feeds sync.WaitGroup
	start := time.Now()
	for f := range 2 {
		feeds.Add(1)
		go func() {
			defer feeds.Done()
			for v := uint64(2); v <= versions; v++ {
				// The second feed runs a few versions behind the first.
				if f == 1 && v > 3 {
					h.Publish(snap("svc", v-3))
				}
				h.Publish(snap("svc", v))
			}
		}()
	}
	feeds.Wait()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("publishing %d versions twice took %v: something blocked", versions, d)
	}
	if n := h.Publish(snap("svc", versions)); n != -1 {
		t.Fatalf("republishing the newest version offered it to %d subscribers, want it dropped (-1)", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pres, n := h.Presence("svc")
		on := 0
		for _, p := range pres {
			if p.Acked == versions {
				on++
			}
		}
		if on == readers {
			if n != readers+1 {
				t.Fatalf("presence counts %d subscriptions, want %d", n, readers+1)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d readers acked v%d", on, readers, versions)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for i, r := range results {
		if r.bad || r.last != versions {
			t.Fatalf("reader %d: went back %v, last v%d, want v%d", i, r.bad, r.last, versions)
		}
	}
	if m := stalled.Take(); m == nil || m.Version != versions {
		t.Fatalf("stalled subscriber holds %+v, want only v%d", m, versions)
	}
	for _, s := range subs {
		h.Unsubscribe(s)
	}
	h.Unsubscribe(stalled)
	if n := h.Subscribers(); n != 0 {
		t.Fatalf("%d subscribers left after every unsubscribe", n)
	}
}

// A new epoch (a reset store) is published even with a lower version.
func TestNewEpochReplacesHistory(t *testing.T) {
	h := hub.New(hub.Config{}, nil)
	h.Publish(snap("svc", 9))
	s := snap("svc", 2)
	s.Epoch = "e2"
	if n := h.Publish(s); n != 0 {
		t.Fatalf("publish of a new epoch: %d, want 0 (accepted, no subscribers)", n)
	}
	got, _ := h.Latest("svc")
	if got.Epoch != "e2" || got.Version != 2 {
		t.Fatalf("latest %s/v%d, want e2/v2", got.Epoch, got.Version)
	}
}

// The first frame is the latest snapshot, or "unchanged" when the client
// already runs it in the same epoch; an unknown service is ENOTFOUND.
func TestFirstFrame(t *testing.T) {
	h := hub.New(hub.Config{}, nil)
	if _, err := h.Subscribe("nope", "i", "tok", 0, ""); brownout.ErrorCode(err) != brownout.ENOTFOUND {
		t.Fatalf("subscribe to an unpublished service: %v, want ENOTFOUND", err)
	}
	h.Publish(snap("svc", 4))
	for _, tc := range []struct {
		known     uint64
		epoch     string
		wantType  string
		wantValue uint64
	}{
		{0, "", "state", 4},
		{4, "", "unchanged", 4},
		{4, "e1", "unchanged", 4},
		{4, "other", "state", 4},
		{3, "e1", "state", 4},
	} {
		sub, err := h.Subscribe("svc", "i", "tok", tc.known, tc.epoch)
		if err != nil {
			t.Fatal(err)
		}
		m := sub.Take()
		var f struct {
			Type    string `json:"type"`
			Version uint64 `json:"version"`
		}
		if m == nil || json.Unmarshal(m.Data, &f) != nil || f.Type != tc.wantType || f.Version != tc.wantValue {
			t.Fatalf("known v%d epoch %q: first frame %+v, want %s v%d", tc.known, tc.epoch, f, tc.wantType, tc.wantValue)
		}
		h.Unsubscribe(sub)
	}
}

// Revoking a token ends its subscriptions with the revoked code, and a
// subscription racing the revocation is either refused or ended: never
// left open.
func TestRevokeRacingSubscribe(t *testing.T) {
	h := hub.New(hub.Config{}, nil)
	h.Publish(snap("svc", 1))
	other, err := h.Subscribe("svc", "other", "keep", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	for round := range 200 {
		tok := fmt.Sprintf("tok%d", round)
		var wg sync.WaitGroup
		var sub *hub.Subscriber
		var serr error
		wg.Add(2)
		go func() { defer wg.Done(); sub, serr = h.Subscribe("svc", "i", tok, 0, "") }()
		go func() { defer wg.Done(); h.CloseToken(tok, "token revoked") }()
		wg.Wait()
		if serr != nil {
			if brownout.ErrorCode(serr) != brownout.EUNAUTHORIZED {
				t.Fatalf("round %d: refused with %v, want EUNAUTHORIZED", round, serr)
			}
			continue
		}
		select {
		case <-sub.Done():
			if sub.CloseCode() != hub.CloseRevoked {
				t.Fatalf("round %d: closed with %d, want %d", round, sub.CloseCode(), hub.CloseRevoked)
			}
		default:
			t.Fatalf("round %d: subscription of a revoked token left open", round)
		}
		h.Unsubscribe(sub)
	}
	select {
	case <-other.Done():
		t.Fatal("another token's subscription was closed")
	default:
	}
	if n := h.ConnectionsForToken("keep"); n != 1 {
		t.Fatalf("other token has %d connections, want 1", n)
	}
}

// Acks beyond the published version are ignored; acks of a pushed change
// record latency; presence of a long-gone instance is swept.
func TestAckAndSweep(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	h := hub.New(hub.Config{Now: clock, ForgetAfter: time.Minute}, nil)
	h.Publish(snap("svc", 1))
	sub, err := h.Subscribe("svc", "i", "tok", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	h.Ack(sub, 7)
	if p, _ := h.Presence("svc"); p[0].Acked != 0 {
		t.Fatalf("ack of a version never sent recorded: %d", p[0].Acked)
	}
	h.Publish(snap("svc", 2))
	advance(30 * time.Millisecond)
	h.Ack(sub, 2)
	p, _ := h.Presence("svc")
	if p[0].Acked != 2 || p[0].AckLatency != 30*time.Millisecond || p[0].Conns != 1 {
		t.Fatalf("presence %+v, want acked v2 after 30ms, one connection", p[0])
	}
	h.Unsubscribe(sub)
	h.Sweep()
	if p, _ := h.Presence("svc"); len(p) != 1 || p[0].Conns != 0 {
		t.Fatalf("presence right after disconnect: %+v, want kept with 0 connections", p)
	}
	advance(2 * time.Minute)
	h.Sweep()
	if p, _ := h.Presence("svc"); len(p) != 0 {
		t.Fatalf("presence after ForgetAfter: %+v, want none", p)
	}
}

// The instance limit applies to subscribing instances.
func TestInstanceLimit(t *testing.T) {
	h := hub.New(hub.Config{MaxInstances: 2}, nil)
	h.Publish(snap("svc", 1))
	for _, name := range []string{"a", "b", "a"} {
		if _, err := h.Subscribe("svc", name, "tok", 0, ""); err != nil {
			t.Fatalf("subscribe %s: %v", name, err)
		}
	}
	if _, err := h.Subscribe("svc", "c", "tok", 0, ""); brownout.ErrorCode(err) != brownout.EINVALID {
		t.Fatalf("third instance: %v, want EINVALID", err)
	}
}
