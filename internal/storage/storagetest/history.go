package storagetest

import (
	"context"
	"encoding/base64"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

// seedAudit appends n entries, entry i at TS(i s) by actor i%3 about
// service i%2 (through the target conventions).
func seedAudit(tb testing.TB, db storage.Store, n int) []brownout.AuditEntry {
	tb.Helper()
	actors := []string{"alice", "bob", "carol"}
	targets := []string{"service:checkout/thresholds", "override:o1 service:search"}
	var all []brownout.AuditEntry
	for i := 0; i < n; i++ {
		a := brownout.AuditEntry{At: TS(time.Duration(i) * time.Second), Actor: actors[i%3], Action: "act",
			Target: targets[i%2]}
		if err := db.AppendAudit(context.Background(), a); err != nil {
			tb.Fatal(err)
		}
		a.ID = int64(i + 1)
		all = append(all, a)
	}
	return all
}

// collect pages through list with f until next_cursor is empty.
func collect[T any](tb testing.TB, list func(brownout.Filter) (brownout.Page[T], error), f brownout.Filter) ([]T, int) {
	tb.Helper()
	var out []T
	pages := 0
	for {
		p, err := list(f)
		if err != nil {
			tb.Fatal(err)
		}
		pages++
		if len(p.Items) > f.Limit && f.Limit > 0 {
			tb.Fatalf("page of %d items, limit %d", len(p.Items), f.Limit)
		}
		out = append(out, p.Items...)
		if p.NextCursor == "" {
			return out, pages
		}
		if pages > 10_000 {
			tb.Fatal("pagination does not end")
		}
		f.Cursor = p.NextCursor
	}
}

func testListAuditPagination(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	all := seedAudit(t, db, 100)
	list := func(f brownout.Filter) (brownout.Page[brownout.AuditEntry], error) { return db.ListAudit(ctx, f) }

	tests := []struct {
		name   string
		filter brownout.Filter
		keep   func(i int, a brownout.AuditEntry) bool
	}{
		{"all", brownout.Filter{}, func(int, brownout.AuditEntry) bool { return true }},
		{"service via service: prefix", brownout.Filter{Service: "checkout"}, func(i int, _ brownout.AuditEntry) bool { return i%2 == 0 }},
		{"service in second word", brownout.Filter{Service: "search"}, func(i int, _ brownout.AuditEntry) bool { return i%2 == 1 }},
		{"unknown service", brownout.Filter{Service: "nope"}, func(int, brownout.AuditEntry) bool { return false }},
		{"actor", brownout.Filter{Actor: "bob"}, func(i int, _ brownout.AuditEntry) bool { return i%3 == 1 }},
		{"from", brownout.Filter{From: TS(90 * time.Second)}, func(i int, _ brownout.AuditEntry) bool { return i >= 90 }},
		{"to", brownout.Filter{To: TS(10 * time.Second)}, func(i int, _ brownout.AuditEntry) bool { return i < 10 }},
		{"all filters", brownout.Filter{Service: "checkout", Actor: "alice", From: TS(20 * time.Second), To: TS(80 * time.Second)},
			func(i int, _ brownout.AuditEntry) bool { return i%2 == 0 && i%3 == 0 && i >= 20 && i < 80 }},
	}
	for _, tt := range tests {
		var want []int64
		for i := len(all) - 1; i >= 0; i-- {
			if tt.keep(i, all[i]) {
				want = append(want, all[i].ID)
			}
		}
		for _, limit := range []int{1, 7, 50, 1000} {
			t.Run(fmt.Sprintf("%s/limit=%d", tt.name, limit), func(t *testing.T) {
				f := tt.filter
				f.Limit = limit
				items, pages := collect(t, list, f)
				var got []int64
				for _, a := range items {
					got = append(got, a.ID)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("got ids %v\nwant %v", got, want)
				}
				if wantPages := max(1, (len(want)+limit-1)/limit); pages != wantPages && pages != wantPages+1 {
					t.Fatalf("got %d pages, want %d", pages, wantPages)
				}
			})
		}
	}

	// Entries read back whole.
	p, err := db.ListAudit(ctx, brownout.Filter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	last := all[len(all)-1]
	if got := p.Items[0]; got.ID != last.ID || got.Actor != last.Actor || got.Target != last.Target || !got.At.Equal(last.At) {
		t.Fatalf("got %+v, want %+v", got, last)
	}
	// An exact last page has no next cursor.
	p, err = db.ListAudit(ctx, brownout.Filter{Limit: 100})
	if err != nil || len(p.Items) != 100 || p.NextCursor != "" {
		t.Fatalf("exact page: got %d items, cursor %q, err %v", len(p.Items), p.NextCursor, err)
	}
	// Limit 0 is the default page size; above the maximum is clamped.
	p, _ = db.ListAudit(ctx, brownout.Filter{})
	if len(p.Items) != min(storage.DefaultLimit, 100) {
		t.Fatalf("limit 0: got %d items", len(p.Items))
	}
}

func testListBadCursor(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	seedAudit(t, db, 3)
	p, err := db.ListAudit(ctx, brownout.Filter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		cursor string
	}{
		{"not base64", "!!!"},
		{"garbage", base64.RawURLEncoding.EncodeToString([]byte("hello"))},
		{"negative", base64.RawURLEncoding.EncodeToString([]byte("a:-5"))},
		{"zero", base64.RawURLEncoding.EncodeToString([]byte("a:0"))},
		{"audit cursor on level changes", p.NextCursor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.name == "audit cursor on level changes" {
				_, err = db.ListLevelChanges(ctx, brownout.Filter{Cursor: tt.cursor})
			} else {
				_, err = db.ListAudit(ctx, brownout.Filter{Cursor: tt.cursor})
			}
			WantCode(t, err, brownout.EBADREQUEST)
			if e, ok := err.(*brownout.Error); !ok || e.Field != "cursor" {
				t.Fatalf("got %#v, want field cursor", err)
			}
		})
	}
	_, err = db.ListAudit(ctx, brownout.Filter{Limit: -1})
	WantCode(t, err, brownout.EBADREQUEST)
}

func testListLevelChangesPagination(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	services := []string{"checkout", "search", "api"}
	version := map[string]uint64{}
	type key struct {
		service string
		version uint64
	}
	var all []key
	for i := 0; i < 60; i++ {
		s := services[i%3]
		version[s]++
		st := brownout.ServiceState{Name: s, Version: version[s], Level: i % 4, ChangedAt: TS(time.Duration(i) * time.Second)}
		ch := brownout.LevelChange{Service: s, Kind: brownout.KindEffective, ToLevel: i % 4, At: st.ChangedAt,
			Cause: brownout.CauseSignal, Version: st.Version}
		if err := db.SaveServiceState(ctx, st, []brownout.LevelChange{ch}); err != nil {
			t.Fatal(err)
		}
		all = append(all, key{s, st.Version})
	}
	list := func(f brownout.Filter) (brownout.Page[brownout.LevelChange], error) {
		return db.ListLevelChanges(ctx, f)
	}
	tests := []struct {
		name   string
		filter brownout.Filter
		keep   func(i int) bool
	}{
		{"all", brownout.Filter{Limit: 8}, func(int) bool { return true }},
		{"service", brownout.Filter{Service: "search", Limit: 3}, func(i int) bool { return i%3 == 1 }},
		{"actor is ignored", brownout.Filter{Actor: "bob", Limit: 10}, func(int) bool { return true }},
		{"range", brownout.Filter{From: TS(10 * time.Second), To: TS(20 * time.Second), Limit: 4}, func(i int) bool { return i >= 10 && i < 20 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []key
			for i := len(all) - 1; i >= 0; i-- {
				if tt.keep(i) {
					want = append(want, all[i])
				}
			}
			items, _ := collect(t, list, tt.filter)
			var got []key
			for _, c := range items {
				got = append(got, key{c.Service, c.Version})
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %v\nwant %v", got, want)
			}
		})
	}
}
