package notify_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/notify"
	"github.com/brownout-io/brownout/internal/storage"
	"github.com/brownout-io/brownout/internal/storage/postgres"
	"github.com/brownout-io/brownout/internal/storage/postgres/pgtest"
)

// Three replicas' deliverers share one PostgreSQL outbox: every delivery
// reaches the receiver, and none twice, since claims never overlap.
func TestReplicasDeliverEachOnce(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	var stores []*postgres.DB
	for range 3 {
		db, err := postgres.Open(context.Background(), dsn, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		stores = append(stores, db)
	}
	var mu sync.Mutex
	got := map[string]int{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond) // keep several in flight at once
		mu.Lock()
		got[r.Header.Get(notify.HeaderDelivery)]++
		mu.Unlock()
	}))
	t.Cleanup(recv.Close)
	var ns []*notify.Notifier
	for _, db := range stores {
		ns = append(ns, notify.New(fastConfig("127.0.0.1"), db, nil, nil))
	}
	create(t, ns[0], recv.URL, brownout.FormatJSON)
	const n = 60
	var evs []brownout.Event
	for i := range n {
		evs = append(evs, storage.StaleEvent(fmt.Sprintf("svc%d", i), false, 0, time.Now()))
	}
	if err := stores[1].AddEvents(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	for _, nt := range ns {
		run(t, nt)
	}
	waitFor(t, "every delivery", func() bool {
		p, _, err := stores[2].OutboxStats(context.Background())
		return err == nil && p == 0
	})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != n {
		t.Fatalf("%d distinct deliveries arrived, want %d", len(got), n)
	}
	for id, c := range got {
		if c != 1 {
			t.Errorf("%s arrived %d times", id, c)
		}
	}
}
