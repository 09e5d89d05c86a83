package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/storage/storagetest"

	"github.com/brownout-io/brownout"
)

// MustOpenDB opens a fresh database file in a temporary directory and
// closes it when the test ends.
func MustOpenDB(tb testing.TB) *DB {
	tb.Helper()
	return mustOpenPath(tb, filepath.Join(tb.TempDir(), "brownout.db"))
}

func mustOpenPath(tb testing.TB, path string) *DB {
	tb.Helper()
	db, err := Open(context.Background(), path, nil)
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return db
}

func TestOpenMigratesAndReopens(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "brownout.db")
	ctx := context.Background()

	db, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var version int64
	if err := db.read.QueryRowContext(ctx, `SELECT max(version_id) FROM goose_db_version`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version < 1 {
		t.Fatalf("got schema version %d, want >= 1", version)
	}
	var mode string
	if err := db.read.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Fatalf("got journal_mode %q, want wal", mode)
	}
	if err := db.AppendAudit(ctx, brownout.AuditEntry{At: storagetest.TS(0), Actor: "a", Action: "x", Target: "t"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Re-open: nothing to apply, data still there.
	db = mustOpenPath(t, path)
	var rows int
	if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM goose_db_version`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	var again int64
	if err := db.read.QueryRowContext(ctx, `SELECT max(version_id) FROM goose_db_version`).Scan(&again); err != nil {
		t.Fatal(err)
	}
	if again != version {
		t.Fatalf("got schema version %d after re-open, want %d", again, version)
	}
	page, err := db.ListAudit(ctx, brownout.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 {
		t.Fatalf("got %d audit entries after re-open, want 1", len(page.Items))
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestReadPoolIsQueryOnly(t *testing.T) {
	t.Parallel()
	db := MustOpenDB(t)
	_, err := db.read.Exec(`INSERT INTO meta (key, value) VALUES ('x', 1)`)
	if err == nil {
		t.Fatal("write through the read pool succeeded, want query_only to refuse it")
	}
}

func TestObserver(t *testing.T) {
	t.Parallel()
	db := MustOpenDB(t)
	var ops []string
	db.SetObserver(func(op string, d time.Duration) { ops = append(ops, op) })
	if err := db.AppendAudit(context.Background(), brownout.AuditEntry{At: storagetest.TS(0), Actor: "a", Action: "x"}); err != nil {
		t.Fatal(err)
	}
	db.SetObserver(nil)
	if err := db.AppendAudit(context.Background(), brownout.AuditEntry{At: storagetest.TS(0), Actor: "a", Action: "x"}); err != nil {
		t.Fatal(err)
	}
	if len(ops) != 1 || ops[0] != "append_audit" {
		t.Fatalf("got ops %v, want [append_audit]", ops)
	}
}

func TestTranslate(t *testing.T) {
	t.Parallel()
	if !errors.Is(translate(nil), nil) {
		t.Fatal("translate(nil) != nil")
	}
	db := MustOpenDB(t)
	ctx := context.Background()
	tok := brownout.Token{ID: "t1", Name: "n", Scope: brownout.ScopeAdmin, Hash: []byte("h"), CreatedAt: storagetest.TS(0)}
	if err := db.CreateToken(ctx, tok, brownout.AuditEntry{At: storagetest.TS(0)}); err != nil {
		t.Fatal(err)
	}
	storagetest.WantCode(t, db.CreateToken(ctx, tok, brownout.AuditEntry{At: storagetest.TS(0)}), brownout.ECONFLICT)
}
