package postgres

import (
	"context"
	"testing"

	"github.com/brownout-io/brownout/internal/featureflags"
	"github.com/brownout-io/brownout/internal/levels"
	"github.com/brownout-io/brownout/internal/storage"
	"github.com/brownout-io/brownout/internal/storage/postgres/pgtest"
	"github.com/brownout-io/brownout/internal/storage/storagetest"
)

// MustOpenDB opens a store on a fresh database of the test server and
// closes it when the test ends (pgtest drops the database after).
func MustOpenDB(tb testing.TB) *DB {
	tb.Helper()
	return mustOpenDSN(tb, pgtest.NewDatabase(tb))
}

func mustOpenDSN(tb testing.TB, dsn string) *DB {
	tb.Helper()
	db, err := Open(context.Background(), dsn, Options{})
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return db
}

func TestContract(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return MustOpenDB(t) })
}

func storagetestThresholds() levels.Thresholds { return storagetest.CustomThresholds() }
func storagetestFlags() featureflags.Set       { return storagetest.CustomFlags() }
