package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
)

// TestReadOnlyWritesAre503AndRecover: a store whose writes SQLite refuses
// as read-only answers a 503 that says so, fails Ping, and recovers by
// itself once writes succeed again. query_only makes SQLite refuse writes
// with SQLITE_READONLY, as a read-only file or file system does.
func TestReadOnlyWritesAre503AndRecover(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "b.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	audit := func() error {
		return db.AppendAudit(ctx, brownout.AuditEntry{At: time.Now(), Actor: "t", Action: "test", Target: "x", Before: []byte("null"), After: []byte("null")})
	}
	if err := audit(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.ExecContext(ctx, "PRAGMA query_only = 1"); err != nil {
		t.Fatal(err)
	}
	err = audit()
	var be *brownout.Error
	if !errors.As(err, &be) || be.Code != brownout.EUNAVAILABLE || !strings.Contains(be.Message, "read-only") {
		t.Fatalf("write on a read-only store: %v, want a 503 error saying read-only", err)
	}
	if err := db.Ping(ctx); !errors.As(err, &be) || be.Code != brownout.EUNAVAILABLE {
		t.Fatalf("Ping on a read-only store: %v, want a 503 error", err)
	}
	if _, err := db.write.ExecContext(ctx, "PRAGMA query_only = 0"); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("Ping once writable again: %v", err)
	}
	if err := audit(); err != nil {
		t.Fatalf("write once writable again: %v", err)
	}
}
