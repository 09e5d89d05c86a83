package controller_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/controller"
	"github.com/brownout-io/brownout/internal/hub"
	"github.com/brownout-io/brownout/internal/storage/sqlite"
)

// The events the controller writes to the outbox on its own: a service
// going stale and reporting again (once per transition, never for a
// service merely loaded), and an emergency override expiring; the level
// changes of the same ticks come from the state commits.
func TestStaleAndExpiryEvents(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	db := openStore(t)
	if err := db.CreateWebhook(ctx, brownout.Webhook{ID: "wh", Name: "wh", URL: "https://hooks.example.com/", Format: brownout.FormatJSON, Secret: "s", CreatedAt: clk.Now()}, brownout.AuditEntry{At: clk.Now(), Actor: "admin", Action: "webhook.create", Target: "webhook:wh"}); err != nil {
		t.Fatal(err)
	}
	c, _ := newController(t, db, clk)
	types := func() []string {
		t.Helper()
		ds, err := db.ClaimDeliveries(ctx, clk.Now().Add(time.Hour), time.Hour, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range ds {
			out = append(out, d.Event.Type+" "+d.Event.Service)
		}
		return out
	}
	for range 3 {
		if err := c.Ingest(ctx, report("api", "api-1", 20)); err != nil {
			t.Fatal(err)
		}
		c.Tick(ctx)
		clk.Add(time.Second)
	}
	if got := types(); len(got) != 0 {
		t.Fatalf("a service starting to report: %v", got)
	}
	for range 40 { // past --stale-after (30 s)
		c.Tick(ctx)
		clk.Add(time.Second)
	}
	if got := types(); len(got) != 1 || got[0] != "service.stale api" {
		t.Fatalf("after silence: %v, want one service.stale", got)
	}
	if err := c.Ingest(ctx, report("api", "api-1", 20)); err != nil {
		t.Fatal(err)
	}
	c.Tick(ctx)
	if got := types(); len(got) != 1 || got[0] != "service.live api" {
		t.Fatalf("reporting again: %v, want one service.live", got)
	}

	if _, err := c.Emergency(ctx, "drill", "1m", brownout.Actor{Name: "admin", ID: "admin"}); err != nil {
		t.Fatal(err)
	}
	if got := types(); len(got) != 2 || got[0] != "emergency.on " || got[1] != "level.changed api" {
		t.Fatalf("emergency: %v", got)
	}
	clk.Add(2 * time.Minute)
	if err := c.Ingest(ctx, report("api", "api-1", 20)); err != nil {
		t.Fatal(err)
	}
	c.Tick(ctx)
	got := types()
	want := map[string]bool{"emergency.off ": true, "level.changed api": true}
	if len(got) != 2 || !want[got[0]] || !want[got[1]] {
		t.Fatalf("emergency expiry: %v", got)
	}
}

// flakyEvents refuses AddEvents while down is set, as a store that is
// unreachable does.
type flakyEvents struct {
	*sqlite.DB
	down atomic.Bool
}

func (f *flakyEvents) AddEvents(ctx context.Context, evs []brownout.Event) error {
	if f.down.Load() && len(evs) > 0 {
		return errors.New("store unreachable")
	}
	return f.DB.AddEvents(ctx, evs)
}

// A stale transition seen while the store refuses events is written on
// a later tick, not lost: it has no other record.
func TestStaleEventKeptWhileTheStoreIsDown(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	db := &flakyEvents{DB: openStore(t)}
	if err := db.CreateWebhook(ctx, brownout.Webhook{ID: "wh", Name: "wh", URL: "https://hooks.example.com/", Format: brownout.FormatJSON, Secret: "s", CreatedAt: clk.Now()}, brownout.AuditEntry{At: clk.Now(), Actor: "admin", Action: "webhook.create", Target: "webhook:wh"}); err != nil {
		t.Fatal(err)
	}
	c := controller.New(controller.Config{Now: clk.Now}, db, nil, hub.New(hub.Config{Now: clk.Now}, nil), nil, nil)
	if err := c.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Ingest(ctx, report("api", "api-1", 20)); err != nil {
		t.Fatal(err)
	}
	c.Tick(ctx)
	db.down.Store(true)
	for range 40 {
		clk.Add(time.Second)
		c.Tick(ctx)
	}
	if p, _, _ := db.OutboxStats(ctx); p != 0 {
		t.Fatalf("%d deliveries written while the store was down", p)
	}
	db.down.Store(false)
	clk.Add(time.Second)
	c.Tick(ctx)
	ds, err := db.ClaimDeliveries(ctx, clk.Now(), time.Minute, 10)
	if err != nil || len(ds) != 1 || ds[0].Event.Type != brownout.EventServiceStale {
		t.Fatalf("after the store came back: %+v %v", ds, err)
	}
}
