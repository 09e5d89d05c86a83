package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
	"github.com/brownout-io/brownout/internal/storage/postgres/pgtest"
	"github.com/jackc/pgx/v5"
)

// When the database is lost (connections cut, or a network that stops
// answering), writes fail with ErrUnavailable — a 503, in bounded time —
// the change feed reports itself down, nothing half-written remains, and
// everything recovers on its own when the database is back.
func TestDatabaseLoss(t *testing.T) {
	t.Parallel()
	p, dsn := pgtest.NewProxy(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	db := mustOpenOpts(t, dsn, Options{Replica: "a", WriteTimeout: 2 * time.Second})
	f := listen(t, db)
	f.next(t, brownout.ChangeResync)
	if err := db.SaveServiceStates(ctx, []brownout.StateChange{state("checkout", 1)}); err != nil {
		t.Fatal(err)
	}
	f.next(t, brownout.ChangeState)

	for _, mode := range []string{"cut", "blackhole"} {
		if mode == "cut" {
			p.Cut()
		} else {
			p.Blackhole()
		}
		start := time.Now()
		err := db.SaveServiceStates(ctx, []brownout.StateChange{state("checkout", 3)})
		if !errors.Is(err, storage.ErrUnavailable) || brownout.ErrorCode(err) != brownout.EUNAVAILABLE {
			t.Fatalf("%s: write: %v, want ErrUnavailable", mode, err)
		}
		if d := time.Since(start); d > 6*time.Second { // WriteTimeout is 2 s; slack for a loaded machine
			t.Fatalf("%s: the write took %s to fail", mode, d)
		}
		t.Logf("%s: write failed after %s", mode, time.Since(start))
		f.next(t, brownout.ChangeLost)
		t.Logf("%s: lost after %s", mode, time.Since(start))
		if err := db.Ready(ctx); !errors.Is(err, storage.ErrUnavailable) {
			t.Fatalf("%s: ready: %v, want ErrUnavailable", mode, err)
		}
		p.Restore()
		f.next(t, brownout.ChangeResync)
		t.Logf("%s: resync after %s", mode, time.Since(start))
		deadline := time.Now().Add(15 * time.Second)
		for {
			err := db.SaveServiceStates(ctx, []brownout.StateChange{state("checkout", 2)})
			if err == nil {
				break
			}
			if !errors.Is(err, storage.ErrUnavailable) || time.Now().After(deadline) {
				t.Fatalf("%s: after the database came back: %v", mode, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("%s: write ok after %s", mode, time.Since(start))
		if err := db.Ready(ctx); err != nil {
			t.Fatalf("%s: ready after recovery: %v", mode, err)
		}
	}
	// The failed writes left nothing: level 2 twice, never 3.
	st, err := db.LoadService(ctx, "checkout")
	if err != nil || st.Level != 2 || st.Version != 3 {
		t.Fatalf("after two losses: %+v, %v; want level 2 at version 3", st, err)
	}
}

// A database that turns read-only (a standby after a failover, or
// read-only mode) refuses writes with a 503 that says so, and the store
// takes writes again once it accepts them.
func TestReadOnlyDatabase(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	db := mustOpenOpts(t, dsn, Options{})
	ctx := context.Background()
	if err := db.SaveServiceStates(ctx, []brownout.StateChange{state("checkout", 1)}); err != nil {
		t.Fatal(err)
	}
	name := db.config.ConnConfig.Database
	makeReadOnly := func() {
		t.Helper()
		if _, err := db.pool.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s SET default_transaction_read_only = on`, name)); err != nil {
			t.Fatal(err)
		}
		// The setting applies to new sessions: drop the pool's.
		if _, err := db.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
			t.Fatal(err)
		}
		db.pool.Reset()
	}
	makeReadOnly()
	var err error
	for range 20 { // the first tries may still find a dying connection
		err = db.SaveServiceStates(ctx, []brownout.StateChange{state("checkout", 3)})
		if strings.Contains(brownout.ErrorMessage(err), "read-only") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(brownout.ErrorMessage(err), "read-only") {
		t.Fatalf("write to a read-only database: %v (%q), want a 503 naming read-only", err, brownout.ErrorMessage(err))
	}
	// ALTER DATABASE itself is refused in a read-only session; a fresh
	// connection that turns it off for itself can still undo it.
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cc.RuntimeParams["default_transaction_read_only"] = "off"
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s SET default_transaction_read_only = off`, name)); err != nil {
		t.Fatal(err)
	}
	db.pool.Reset()
	if err := db.SaveServiceStates(ctx, []brownout.StateChange{state("checkout", 2)}); err != nil {
		t.Fatalf("after the database took writes again: %v", err)
	}
	st, err := db.LoadService(ctx, "checkout")
	if err != nil || st.Level != 2 || st.Version != 2 {
		t.Fatalf("state: %+v, %v; want level 2 at version 2 (the refused write left nothing)", st, err)
	}
}
