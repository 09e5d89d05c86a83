package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

// configRows are the configuration tables' rows in SQLite; the methods
// over them are storage.Config's.
type configRows struct{ db *DB }

func (r configRows) ConfigRow(ctx context.Context, table, scope string) ([]byte, bool, error) {
	var body []byte
	err := r.db.read.QueryRowContext(ctx, `SELECT body FROM `+table+` WHERE scope = ?`, scope).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return body, true, nil
}

func (r configRows) ServiceConfigRows(ctx context.Context, table string, fn func(scope string, body []byte) error) error {
	rows, err := r.db.read.QueryContext(ctx, `SELECT scope, body FROM `+table+` WHERE scope != ? ORDER BY scope`, brownout.GlobalScope)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var scope string
		var body []byte
		if err := rows.Scan(&scope, &body); err != nil {
			return err
		}
		if err := fn(scope, body); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (r configRows) PutConfigRow(ctx context.Context, op, table, scope string, body []byte, at time.Time, a brownout.AuditEntry) error {
	return r.db.inTx(ctx, op, func(tx *wtx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO `+table+` (scope, body, updated_at) VALUES (?, ?, ?)
			 ON CONFLICT (scope) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at`,
			scope, string(body), at.UnixNano())
		if err != nil {
			return err
		}
		return insertAudit(ctx, tx, a, scope)
	})
}

func (r configRows) DeleteConfigRow(ctx context.Context, op, table, scope string, a brownout.AuditEntry) (bool, error) {
	var existed bool
	err := r.db.inTx(ctx, op, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE scope = ?`, scope)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		existed = n > 0
		if !existed {
			return nil
		}
		return insertAudit(ctx, tx, a, scope)
	})
	return existed, err
}

var _ storage.ConfigRows = configRows{}
