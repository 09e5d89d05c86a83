package sqlite

import (
	"context"
	"path/filepath"
	"testing"
)

func TestEpochIsStableForTheDatabaseAndNewForANewOne(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "e.db")
	db := mustOpenPath(t, path)
	e1, err := db.Epoch(ctx)
	if err != nil || len(e1) != 17 {
		t.Fatalf("epoch %q, %v", e1, err)
	}
	if again, _ := db.Epoch(ctx); again != e1 {
		t.Fatalf("epoch changed within a run: %q then %q", e1, again)
	}
	db.Close()
	db = mustOpenPath(t, path)
	if reopened, _ := db.Epoch(ctx); reopened != e1 {
		t.Fatalf("epoch changed across reopen: %q then %q", e1, reopened)
	}
	other := MustOpenDB(t)
	if e2, _ := other.Epoch(ctx); e2 == e1 || e2 == "" {
		t.Fatalf("a new database got epoch %q (first %q)", e2, e1)
	}
}
