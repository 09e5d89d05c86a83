package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

// configRows are the configuration tables' rows in PostgreSQL; the
// methods over them are storage.Config's. A change is announced on the
// feed with the write.
type configRows struct{ db *DB }

func (r configRows) ConfigRow(ctx context.Context, table, scope string) ([]byte, bool, error) {
	var body string
	err := r.db.pool.QueryRow(ctx, `SELECT body FROM `+table+` WHERE scope = $1`, scope).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, translate(err)
	}
	return []byte(body), true, nil
}

func (r configRows) ServiceConfigRows(ctx context.Context, table string, fn func(scope string, body []byte) error) error {
	rows, err := r.db.pool.Query(ctx, `SELECT scope, body FROM `+table+` WHERE scope <> $1 ORDER BY scope`, brownout.GlobalScope)
	if err != nil {
		return translate(err)
	}
	defer rows.Close()
	for rows.Next() {
		var scope, body string
		if err := rows.Scan(&scope, &body); err != nil {
			return translate(err)
		}
		if err := fn(scope, []byte(body)); err != nil {
			return err
		}
	}
	return translate(rows.Err())
}

func (r configRows) PutConfigRow(ctx context.Context, op, table, scope string, body []byte, at time.Time, a brownout.AuditEntry) error {
	return r.db.inTx(ctx, op, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx,
			`INSERT INTO `+table+` (scope, body, updated_at) VALUES ($1, $2, $3)
			 ON CONFLICT (scope) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at`,
			scope, string(body), at.UnixNano())
		if err != nil {
			return err
		}
		if err := insertAudit(ctx, tx, a, scope); err != nil {
			return err
		}
		return r.db.notify(ctx, tx, brownout.Change{Kind: brownout.ChangeConfig, Service: serviceScope(scope)})
	})
}

func (r configRows) DeleteConfigRow(ctx context.Context, op, table, scope string, a brownout.AuditEntry) (bool, error) {
	var existed bool
	err := r.db.inTx(ctx, op, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE scope = $1`, scope)
		if err != nil {
			return err
		}
		existed = tag.RowsAffected() > 0
		if !existed {
			return nil
		}
		if err := insertAudit(ctx, tx, a, scope); err != nil {
			return err
		}
		return r.db.notify(ctx, tx, brownout.Change{Kind: brownout.ChangeConfig, Service: serviceScope(scope)})
	})
	return existed, err
}

var _ storage.ConfigRows = configRows{}

// serviceScope is the service a config scope is about, "" for the global
// set.
func serviceScope(scope string) string {
	if scope == brownout.GlobalScope {
		return ""
	}
	return scope
}
