package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/storage/storagetest"
)

func TestEndedSessions(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "b.db")
	db := mustOpenPath(t, path)
	now := storagetest.TS(0)
	if ended, err := db.SessionEnded(ctx, "s1"); err != nil || ended {
		t.Fatalf("unknown session: ended %v, %v", ended, err)
	}
	if err := db.EndSession(ctx, "s1", now.Add(time.Hour), now); err != nil {
		t.Fatal(err)
	}
	if err := db.EndSession(ctx, "s1", now.Add(time.Hour), now); err != nil {
		t.Fatalf("ending a session twice: %v", err)
	}
	if err := db.EndSession(ctx, "s2", now.Add(time.Minute), now); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpenPath(t, path)
	for _, id := range []string{"s1", "s2"} {
		if ended, err := db.SessionEnded(ctx, id); err != nil || !ended {
			t.Errorf("%s after reopening: ended %v, %v; want true", id, ended, err)
		}
	}
	// Ending another session later forgets those expired by then.
	if err := db.EndSession(ctx, "s3", now.Add(2*time.Hour), now.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM ended_sessions`).Scan(&n); err != nil || n != 2 {
		t.Errorf("rows after pruning: %d, %v; want 2 (s1, s3)", n, err)
	}
}
