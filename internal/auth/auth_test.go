package auth_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/auth"
	"github.com/brownout-io/brownout/internal/storage/sqlite"
	"github.com/brownout-io/brownout/internal/storage/storagetest"
)

func TestCreateLookupRevokeAndReload(t *testing.T) {
	ctx := context.Background()
	admin := brownout.Actor{ID: auth.AdminTokenID, Name: "admin"}
	path := filepath.Join(t.TempDir(), "a.db")
	db, err := sqlite.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, err := auth.New(ctx, db, "bo_admin", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := a.Authenticate("bo_admin"); err != nil || !p.IsAdmin() {
		t.Fatalf("admin: %+v %v", p, err)
	}
	keep, keepSecret, err := a.Create(ctx, auth.TokenRequest{Scope: brownout.ScopeViewer, Name: "keep"}, admin)
	if err != nil {
		t.Fatal(err)
	}
	gone, goneSecret, err := a.Create(ctx, auth.TokenRequest{Scope: brownout.ScopeSDK, Service: "cart", Name: "gone"}, admin)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := a.Authenticate(goneSecret); err != nil || !p.CanActFor("cart") || p.CanActFor("other") || p.CanRead() {
		t.Fatalf("sdk token: %+v %v", p, err)
	}
	if p, ok := a.Lookup(gone.ID); !ok || p.Name != "gone" {
		t.Fatalf("lookup before revoke: %+v %v", p, ok)
	}
	if _, err := a.Revoke(ctx, gone.ID, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(goneSecret); brownout.ErrorCode(err) != brownout.EUNAUTHORIZED {
		t.Fatalf("revoked token authenticated: %v", err)
	}
	if _, ok := a.Lookup(gone.ID); ok {
		t.Fatal("revoked token still found by id")
	}
	if _, err := a.Revoke(ctx, gone.ID, admin); brownout.ErrorCode(err) != brownout.ECONFLICT {
		t.Fatalf("second revoke: %v", err)
	}
	if _, err := a.Revoke(ctx, auth.AdminTokenID, admin); brownout.ErrorCode(err) != brownout.ECONFLICT {
		t.Fatalf("revoking the bootstrap token: %v", err)
	}
	// A new authenticator over the same store knows the survivor only.
	b, err := auth.New(ctx, db, "bo_admin", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := b.Authenticate(keepSecret); err != nil || p.TokenID != keep.ID {
		t.Fatalf("reloaded token: %+v %v", p, err)
	}
	if _, err := b.Authenticate(goneSecret); err == nil {
		t.Fatal("reloaded authenticator accepts a revoked token")
	}
	if _, ok := b.Lookup(keep.ID); !ok {
		t.Fatal("reloaded authenticator cannot look up an active token")
	}
}

// pausingStore is the real store, whose token read a test can pause.
type pausingStore struct {
	*sqlite.DB
	storagetest.Gate
}

func (s *pausingStore) ActiveTokens(ctx context.Context) ([]brownout.Token, error) {
	toks, err := s.DB.ActiveTokens(ctx)
	s.Pause()
	return toks, err
}

// A reload (a change feed's token event) that read the tokens before a
// local create or revoke committed must not undo it: the new token would
// count as revoked, and the hub refuses a revoked token's subscriptions
// for good; the revoked token would authenticate again.
func TestReloadRacingCreateAndRevoke(t *testing.T) {
	ctx := context.Background()
	admin := brownout.Actor{ID: auth.AdminTokenID, Name: "admin"}
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := &pausingStore{DB: db}
	a, err := auth.New(ctx, st, "bo_admin", nil)
	if err != nil {
		t.Fatal(err)
	}
	var revoked sync.Map
	a.OnRevoke(func(id string) { revoked.Store(id, true) })
	old, oldSecret, err := a.Create(ctx, auth.TokenRequest{Scope: brownout.ScopeSDK, Service: "cart", Name: "old"}, admin)
	if err != nil {
		t.Fatal(err)
	}

	race := func(write func()) { st.Race(t, func() error { return a.Reload(ctx) }, write) }

	var fresh brownout.Token
	var freshSecret string
	race(func() {
		fresh, freshSecret, err = a.Create(ctx, auth.TokenRequest{Scope: brownout.ScopeSDK, Service: "cart", Name: "fresh"}, admin)
		if err != nil {
			t.Error(err)
		}
	})
	if _, ok := revoked.Load(fresh.ID); ok {
		t.Error("a reload racing the token's creation reported it revoked")
	}
	if !a.Active(fresh.ID) {
		t.Error("a reload racing the token's creation dropped it")
	}
	if _, err := a.Authenticate(freshSecret); err != nil {
		t.Errorf("the new token does not authenticate: %v", err)
	}

	race(func() {
		if _, err := a.Revoke(ctx, old.ID, admin); err != nil {
			t.Error(err)
		}
	})
	if a.Active(old.ID) {
		t.Error("a reload racing the token's revocation brought it back")
	}
	if _, err := a.Authenticate(oldSecret); err == nil {
		t.Error("the revoked token authenticates again")
	}
}
