package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// maxPrepared bounds the writer's statement cache. The store's statements
// are constants, far fewer than this; a statement built at run time (a
// list of placeholders, say) past the bound runs unprepared, as before.
const maxPrepared = 256

// stmtCache holds the write statements prepared once on the writer's
// connection. The driver otherwise parses every statement on every
// execution, which was a fifth of a global override's CPU over ten
// services (three statements per service).
//
// A statement is prepared after the first transaction that ran it has
// ended: the writer has one connection, held by that transaction until
// then. Transactions then run it through Tx.StmtContext, which reuses the
// connection's prepared statement (database/sql prepares it again on a
// new connection, should the old one be replaced).
type stmtCache struct {
	mu       sync.RWMutex
	prepared map[string]*sql.Stmt
	closed   bool
}

func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.prepared[query]
}

// prepare prepares the queries not cached yet on db, within the bound.
// A query that fails to prepare is left to run unprepared.
func (c *stmtCache) prepare(ctx context.Context, db *sql.DB, queries []string) {
	for _, q := range queries {
		c.mu.RLock()
		_, have := c.prepared[q]
		full := c.closed || len(c.prepared) >= maxPrepared
		c.mu.RUnlock()
		if have || full {
			continue
		}
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if _, have := c.prepared[q]; have || c.closed || len(c.prepared) >= maxPrepared {
			c.mu.Unlock()
			st.Close()
			continue
		}
		if c.prepared == nil {
			c.prepared = map[string]*sql.Stmt{}
		}
		c.prepared[q] = st
		c.mu.Unlock()
	}
}

// close closes every prepared statement; none are prepared after it.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.prepared {
		st.Close()
	}
	c.prepared, c.closed = nil, true
}

// wtx is a write transaction whose statements run prepared where the
// cache has them; the ones it has not are noted, to be prepared once the
// transaction has ended.
type wtx struct {
	*sql.Tx
	cache  *stmtCache
	missed []string
}

func (t *wtx) stmt(ctx context.Context, query string) *sql.Stmt {
	if st := t.cache.get(query); st != nil {
		return t.Tx.StmtContext(ctx, st)
	}
	if len(t.missed) < maxPrepared {
		t.missed = append(t.missed, query)
	}
	return nil
}

func (t *wtx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

func (t *wtx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

func (t *wtx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}
