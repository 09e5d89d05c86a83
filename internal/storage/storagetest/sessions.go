package storagetest

import (
	"context"
	"testing"
	"time"
)

// Ended sessions stay ended; ending one later forgets those expired by
// then.
func testEndedSessions(t *testing.T, open Opener) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	now := TS(0)
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
	for _, id := range []string{"s1", "s2"} {
		if ended, err := db.SessionEnded(ctx, id); err != nil || !ended {
			t.Errorf("%s: ended %v, %v; want true", id, ended, err)
		}
	}
	if err := db.EndSession(ctx, "s3", now.Add(2*time.Hour), now.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"s1": true, "s2": false, "s3": true} {
		if ended, err := db.SessionEnded(ctx, id); err != nil || ended != want {
			t.Errorf("%s after s2 expired: ended %v, %v; want %v", id, ended, err, want)
		}
	}
}
