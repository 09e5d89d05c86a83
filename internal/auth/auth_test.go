package auth_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/auth"
	"github.com/brownout-io/brownout/internal/storage/sqlite"
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
