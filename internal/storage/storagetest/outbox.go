package storagetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

func hook(id string, events ...string) brownout.Webhook {
	return brownout.Webhook{ID: id, Name: "hook " + id, URL: "https://hooks.example.com/" + id, Format: brownout.FormatJSON,
		Events: events, Secret: "secret-" + id, CreatedAt: TS(0), CreatedBy: "admin"}
}

func hookAudit(id, action string) brownout.AuditEntry {
	return brownout.AuditEntry{At: TS(0), Actor: "admin", ActorID: "admin", Action: action, Target: "webhook:" + id, Before: []byte(`null`), After: []byte(`{}`)}
}

// claimAll claims every due delivery at now and returns their IDs, sorted.
func claimAll(tb testing.TB, db storage.Store, now time.Time) []string {
	tb.Helper()
	ds, err := db.ClaimDeliveries(context.Background(), now, time.Minute, 1000)
	if err != nil {
		tb.Fatal(err)
	}
	ids := []string{}
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	sort.Strings(ids)
	return ids
}

// testWebhooks: webhooks round-trip with their secret and event filter,
// IDs are unique, deletion is audited and ENOTFOUND once gone.
func testWebhooks(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	a, b := hook("wh_a"), hook("wh_b", brownout.EventEmergencyOn, brownout.EventServiceStale)
	b.CreatedAt = TS(time.Second)
	for _, w := range []brownout.Webhook{a, b} {
		if err := db.CreateWebhook(ctx, w, hookAudit(w.ID, "webhook.create")); err != nil {
			t.Fatal(err)
		}
	}
	WantCode(t, db.CreateWebhook(ctx, a, hookAudit(a.ID, "webhook.create")), brownout.ECONFLICT)
	got, err := db.ListWebhooks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []brownout.Webhook{a, b}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	del, err := db.DeleteWebhook(ctx, "wh_a", hookAudit("wh_a", "webhook.delete"))
	if err != nil || del.ID != "wh_a" {
		t.Fatalf("delete: %+v %v", del, err)
	}
	_, err = db.DeleteWebhook(ctx, "wh_a", hookAudit("wh_a", "webhook.delete"))
	WantCode(t, err, brownout.ENOTFOUND)
	if got, _ := db.ListWebhooks(ctx); len(got) != 1 || got[0].ID != "wh_b" {
		t.Fatalf("after delete: %+v", got)
	}
	page, err := db.ListAudit(ctx, brownout.Filter{})
	if err != nil || len(page.Items) != 3 {
		t.Fatalf("audit: %+v %v", page.Items, err)
	}
}

// testOutboxInSameTransaction: saved level changes and emergency overrides
// put one delivery per webhook that wants the event in the outbox; a save
// that fails puts none; a deleted webhook takes its pending deliveries.
func testOutboxInSameTransaction(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	for _, w := range []brownout.Webhook{hook("wh_all"), hook("wh_emerg", brownout.EventEmergencyOn, brownout.EventEmergencyOff)} {
		if err := db.CreateWebhook(ctx, w, hookAudit(w.ID, "webhook.create")); err != nil {
			t.Fatal(err)
		}
	}
	st := brownout.ServiceState{Name: "checkout", Version: 1, Level: 2, ComputedLevel: 2, ChangedAt: TS(0), Cause: "signal", Detail: "cpu 91% ≥ 80%", CreatedAt: TS(0)}
	change := []brownout.LevelChange{{Kind: brownout.KindEffective, FromLevel: 0, ToLevel: 2, At: TS(0), Cause: brownout.CauseSignal}}
	if err := db.SaveServiceState(ctx, st, change); err != nil {
		t.Fatal(err)
	}
	// Refused (stale version): nothing, event included, is stored.
	if err := db.SaveServiceState(ctx, st, change); !errors.Is(err, storage.ErrStaleVersion) {
		t.Fatalf("got %v, want ErrStaleVersion", err)
	}
	// A computed-only change is no event.
	st.Version = 2
	if err := db.SaveServiceState(ctx, st, []brownout.LevelChange{{Kind: brownout.KindComputed, FromLevel: 2, ToLevel: 1, At: TS(time.Second), Cause: brownout.CauseSignal}}); err != nil {
		t.Fatal(err)
	}
	ds, err := db.ClaimDeliveries(ctx, TS(time.Minute), time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].WebhookID != "wh_all" || ds[0].Event.Type != brownout.EventLevelChanged || ds[0].Event.Service != "checkout" ||
		ds[0].ID != ds[0].Event.ID+".wh_all" || ds[0].Attempts != 0 || !ds[0].CreatedAt.Equal(TS(0)) {
		t.Fatalf("after a level change: %+v", ds)
	}
	if ds[0].Event.Text != "checkout: level FULL → ESSENTIAL (signal): cpu 91% ≥ 80%" {
		t.Fatalf("text %q", ds[0].Event.Text)
	}
	if string(ds[0].Event.Data) != `{"cause":"signal","from_level":0,"to_level":2,"version":1}` {
		t.Fatalf("data %s", ds[0].Event.Data)
	}
	if err := db.CompleteDelivery(ctx, ds[0].ID); err != nil {
		t.Fatal(err)
	}

	o := brownout.Override{ID: "o1", Service: "*", Level: 3, Reason: "incident", Actor: "alice", Emergency: true, CreatedAt: TS(time.Minute)}
	if err := db.CreateOverrideWithStates(ctx, o, brownout.AuditEntry{At: o.CreatedAt, Actor: "alice", Action: "emergency.start", Target: "override:o1"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ClearOverrideWithStates(ctx, "o1", "bob", TS(2*time.Minute), brownout.AuditEntry{At: TS(2 * time.Minute), Actor: "bob", Action: "emergency.end", Target: "override:o1"}, nil); err != nil {
		t.Fatal(err)
	}
	ds, err = db.ClaimDeliveries(ctx, TS(3*time.Minute), time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, d.WebhookID+" "+d.Event.Type)
	}
	sort.Strings(got)
	if want := []string{"wh_all emergency.off", "wh_all emergency.on", "wh_emerg emergency.off", "wh_emerg emergency.on"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after emergency on/off: %v, want %v", got, want)
	}
	if err := db.AddEvents(ctx, []brownout.Event{storage.StaleEvent("checkout", false, 0, TS(4*time.Minute))}); err != nil {
		t.Fatal(err)
	}
	pending, dead, err := db.OutboxStats(ctx)
	if err != nil || pending != 5 || dead != 0 {
		t.Fatalf("stats %d %d %v, want 5 0", pending, dead, err)
	}
	if _, err := db.DeleteWebhook(ctx, "wh_all", hookAudit("wh_all", "webhook.delete")); err != nil {
		t.Fatal(err)
	}
	if pending, _, _ := db.OutboxStats(ctx); pending != 2 {
		t.Fatalf("pending after deleting a webhook: %d, want 2", pending)
	}
}

// testDeliveryLifecycle: leases, attempts counted durably, retry later,
// dead letters with their last error, pagination, redrive.
func testDeliveryLifecycle(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	if err := db.CreateWebhook(ctx, hook("wh"), hookAudit("wh", "webhook.create")); err != nil {
		t.Fatal(err)
	}
	var evs []brownout.Event
	for i := range 3 {
		evs = append(evs, storage.StaleEvent(fmt.Sprintf("svc%d", i), false, 0, TS(time.Duration(i)*time.Second)))
	}
	if err := db.AddEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	now := TS(time.Minute)
	ids := claimAll(t, db, now)
	if len(ids) != 3 {
		t.Fatalf("claimed %v", ids)
	}
	// Leased: nobody else gets them until the lease runs out.
	if again := claimAll(t, db, now.Add(30*time.Second)); len(again) != 0 {
		t.Fatalf("claimed leased deliveries again: %v", again)
	}
	if n, err := db.StartAttempt(ctx, ids[0], now, time.Minute); err != nil || n != 1 {
		t.Fatalf("start attempt: %d %v", n, err)
	}
	if n, err := db.StartAttempt(ctx, ids[0], now, 5*time.Minute); err != nil || n != 2 {
		t.Fatalf("start attempt: %d %v", n, err)
	}
	if err := db.FailAttempt(ctx, ids[0], "503 Service Unavailable"); err != nil {
		t.Fatal(err)
	}
	_, err := db.StartAttempt(ctx, "nope", now, time.Minute)
	WantCode(t, err, brownout.ENOTFOUND)
	// After the first lease: ids[1] and ids[2] come back; ids[0]'s lease
	// was extended by its attempt.
	if got := claimAll(t, db, now.Add(2*time.Minute)); !reflect.DeepEqual(got, ids[1:]) {
		t.Fatalf("after lease: %v, want %v", got, ids[1:])
	}
	if err := db.RetryLater(ctx, ids[1], now.Add(time.Hour), "budget exhausted"); err != nil {
		t.Fatal(err)
	}
	if err := db.CompleteDelivery(ctx, ids[2]); err != nil {
		t.Fatal(err)
	}
	if err := db.DeadLetter(ctx, ids[0], now.Add(3*time.Minute), "503 Service Unavailable"); err != nil {
		t.Fatal(err)
	}
	WantCode(t, db.DeadLetter(ctx, ids[0], now, "again"), brownout.ENOTFOUND)
	if got := claimAll(t, db, now.Add(10*time.Minute)); len(got) != 0 {
		t.Fatalf("due before its time: %v", got)
	}
	ds, err := db.ClaimDeliveries(ctx, now.Add(time.Hour), time.Minute, 10)
	if err != nil || len(ds) != 1 || ds[0].ID != ids[1] || ds[0].LastError != "budget exhausted" {
		t.Fatalf("retry later: %+v %v", ds, err)
	}
	if p, d, err := db.OutboxStats(ctx); err != nil || p != 1 || d != 1 {
		t.Fatalf("stats %d %d %v", p, d, err)
	}

	page, err := db.ListDeadLetters(ctx, brownout.Filter{})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("dead letters %+v %v", page, err)
	}
	dl := page.Items[0]
	if dl.ID != ids[0] || dl.Attempts != 2 || dl.LastError != "503 Service Unavailable" || !dl.DeadAt.Equal(now.Add(3*time.Minute)) || dl.Event.Type != brownout.EventServiceStale {
		t.Fatalf("dead letter %+v", dl)
	}
	red, err := db.RedriveDeadLetter(ctx, ids[0], now.Add(4*time.Minute), brownout.AuditEntry{At: now, Actor: "admin", Action: "deadletter.redrive", Target: "delivery:" + ids[0]})
	if err != nil || red.ID != ids[0] || red.Attempts != 0 {
		t.Fatalf("redrive %+v %v", red, err)
	}
	_, err = db.RedriveDeadLetter(ctx, ids[0], now, brownout.AuditEntry{})
	WantCode(t, err, brownout.ENOTFOUND)
	ds, err = db.ClaimDeliveries(ctx, now.Add(4*time.Minute), time.Minute, 10)
	if err != nil || len(ds) != 1 || ds[0].ID != ids[0] || ds[0].Attempts != 0 {
		t.Fatalf("redriven: %+v %v", ds, err)
	}
	// A dead letter whose webhook is gone cannot be redriven.
	if err := db.DeadLetter(ctx, ids[0], now.Add(5*time.Minute), "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeleteWebhook(ctx, "wh", hookAudit("wh", "webhook.delete")); err != nil {
		t.Fatal(err)
	}
	_, err = db.RedriveDeadLetter(ctx, ids[0], now, brownout.AuditEntry{})
	WantCode(t, err, brownout.ECONFLICT)
	if p, d, _ := db.OutboxStats(ctx); p != 0 || d != 1 {
		t.Fatalf("stats after deleting the webhook: %d %d", p, d)
	}
}

// testDeadLetterPagination: newest first, cursor pages, foreign cursors
// refused.
func testDeadLetterPagination(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	if err := db.CreateWebhook(ctx, hook("wh"), hookAudit("wh", "webhook.create")); err != nil {
		t.Fatal(err)
	}
	var evs []brownout.Event
	for i := range 5 {
		evs = append(evs, storage.StaleEvent(fmt.Sprintf("svc%d", i), false, 0, TS(time.Duration(i)*time.Second)))
	}
	if err := db.AddEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	ds, err := db.ClaimDeliveries(ctx, TS(time.Minute), time.Minute, 10)
	if err != nil || len(ds) != 5 {
		t.Fatalf("claim %d %v", len(ds), err)
	}
	for i, d := range ds {
		if d.Event.Service != fmt.Sprintf("svc%d", i) {
			t.Fatalf("claim order: %d is %s", i, d.Event.Service)
		}
		if err := db.DeadLetter(ctx, d.ID, TS(time.Minute), "x"); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	cursor := ""
	for range 10 {
		page, err := db.ListDeadLetters(ctx, brownout.Filter{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Items {
			seen = append(seen, d.Event.Service)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if want := []string{"svc4", "svc3", "svc2", "svc1", "svc0"}; !reflect.DeepEqual(seen, want) {
		t.Fatalf("pages %v, want %v", seen, want)
	}
	_, err = db.ListDeadLetters(ctx, brownout.Filter{Cursor: storage.EncodeCursor("audit", 3)})
	WantCode(t, err, brownout.EBADREQUEST)

	// Retention: only those dead before the cutoff go, in batches.
	if n, err := db.PruneDeadLetters(ctx, TS(time.Minute), 10); err != nil || n != 0 {
		t.Fatalf("pruned %d (%v) dead at the cutoff, want 0", n, err)
	}
	if n, err := db.PruneDeadLetters(ctx, TS(time.Hour), 3); err != nil || n != 3 {
		t.Fatalf("pruned %d (%v), want a batch of 3", n, err)
	}
	if n, err := db.PruneDeadLetters(ctx, TS(time.Hour), 3); err != nil || n != 2 {
		t.Fatalf("pruned %d (%v), want the last 2", n, err)
	}
	if _, d, _ := db.OutboxStats(ctx); d != 0 {
		t.Fatalf("%d dead letters left", d)
	}
}

// testClaimsDoNotOverlap: claimers racing on one store each get different
// deliveries, and together all of them.
func testClaimsDoNotOverlap(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	if err := db.CreateWebhook(ctx, hook("wh"), hookAudit("wh", "webhook.create")); err != nil {
		t.Fatal(err)
	}
	const n = 60
	var evs []brownout.Event
	for i := range n {
		evs = append(evs, storage.StaleEvent(fmt.Sprintf("svc%d", i), false, 0, TS(0)))
	}
	if err := db.AddEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				ds, err := db.ClaimDeliveries(ctx, TS(time.Minute), time.Hour, 5)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					seen[d.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("claimed %d distinct deliveries, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("%s claimed %d times", id, c)
		}
	}
}
