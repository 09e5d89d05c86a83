package sqlite

import (
	"context"
	"fmt"
	"testing"
)

// TestWriteStatementsArePreparedOnce: a statement a transaction ran is
// prepared once it has ended, later transactions run it prepared with
// their own arguments, a text of several statements still runs them all
// once prepared, and the cache stays within its bound.
func TestWriteStatementsArePreparedOnce(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	exec := func(q string, args ...any) {
		t.Helper()
		if err := db.inTx(ctx, "test", func(tx *wtx) error {
			_, err := tx.ExecContext(ctx, q, args...)
			return err
		}); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	count := func() (n, sum int) {
		t.Helper()
		if err := db.inTx(ctx, "test", func(tx *wtx) error {
			return tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(x), 0) FROM cache_t`).Scan(&n, &sum)
		}); err != nil {
			t.Fatal(err)
		}
		return n, sum
	}
	exec(`CREATE TABLE cache_t (x INTEGER)`)
	const ins = `INSERT INTO cache_t (x) VALUES (?)`
	exec(ins, 1)
	if db.stmts.get(ins) == nil {
		t.Fatal("the insert was not prepared after its first transaction")
	}
	exec(ins, 2)
	exec(ins, 3)
	if n, sum := count(); n != 3 || sum != 6 {
		t.Fatalf("after three inserts: %d rows summing to %d, want 3 and 6", n, sum)
	}
	if db.stmts.get(`SELECT count(*), coalesce(sum(x), 0) FROM cache_t`) == nil {
		t.Error("the query was not prepared")
	}

	const two = `INSERT INTO cache_t (x) VALUES (10); INSERT INTO cache_t (x) VALUES (20)`
	exec(two)
	exec(two) // prepared now
	if n, sum := count(); n != 7 || sum != 66 {
		t.Fatalf("after two double inserts: %d rows summing to %d, want 7 and 66", n, sum)
	}

	for i := range maxPrepared + 20 {
		exec(fmt.Sprintf(`INSERT INTO cache_t (x) SELECT %d WHERE 0`, i))
	}
	db.stmts.mu.RLock()
	n := len(db.stmts.prepared)
	db.stmts.mu.RUnlock()
	if n > maxPrepared {
		t.Errorf("%d statements prepared, more than the bound %d", n, maxPrepared)
	}
	// Past the bound a statement still runs, unprepared.
	exec(`INSERT INTO cache_t (x) VALUES (100)`)
	if n, sum := count(); n != 8 || sum != 166 {
		t.Fatalf("past the bound: %d rows summing to %d, want 8 and 166", n, sum)
	}
}
