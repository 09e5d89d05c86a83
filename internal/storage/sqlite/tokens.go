package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/brownout-io/brownout"
)

const tokenColumns = `id, name, scope, service, hash, created_at, created_by, revoked_at`

func scanToken(sc interface{ Scan(...any) error }) (brownout.Token, error) {
	var t brownout.Token
	var created int64
	var revoked sql.NullInt64
	if err := sc.Scan(&t.ID, &t.Name, &t.Scope, &t.Service, &t.Hash, &created, &t.CreatedBy, &revoked); err != nil {
		return brownout.Token{}, err
	}
	t.CreatedAt = fromNano(created)
	t.RevokedAt = fromNullNano(revoked)
	return t, nil
}

// CreateToken stores t (ID and Hash chosen by the caller) and appends a, in
// one transaction. A duplicate ID or Hash is ECONFLICT.
func (db *DB) CreateToken(ctx context.Context, t brownout.Token, a brownout.AuditEntry) error {
	if t.ID == "" || len(t.Hash) == 0 {
		return brownout.Errorf(brownout.EBADREQUEST, "token id and hash must not be empty")
	}
	return db.inTx(ctx, "create_token", func(tx *wtx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO tokens (`+tokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, t.Name, t.Scope, t.Service, t.Hash, unixNano(t.CreatedAt), t.CreatedBy, nullNano(t.RevokedAt))
		if err != nil {
			return err
		}
		return insertAudit(ctx, tx, a, t.Service)
	})
}

// ListTokens returns every token, revoked ones included, newest first.
func (db *DB) ListTokens(ctx context.Context) ([]brownout.Token, error) {
	return db.queryTokens(ctx, "list tokens", `SELECT `+tokenColumns+` FROM tokens ORDER BY created_at DESC, id DESC`)
}

// ActiveTokens returns the tokens not revoked, newest first; the
// authenticator loads them to check secrets against their hashes.
func (db *DB) ActiveTokens(ctx context.Context) ([]brownout.Token, error) {
	return db.queryTokens(ctx, "active tokens", `SELECT `+tokenColumns+` FROM tokens WHERE revoked_at IS NULL ORDER BY created_at DESC, id DESC`)
}

func (db *DB) queryTokens(ctx context.Context, op, query string) ([]brownout.Token, error) {
	rows, err := db.read.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer rows.Close()
	var out []brownout.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}

// RevokeToken marks token id revoked at at and appends a, in one
// transaction, and returns the revoked token. An unknown id is ENOTFOUND; a
// token already revoked is ECONFLICT.
func (db *DB) RevokeToken(ctx context.Context, id string, at time.Time, a brownout.AuditEntry) (brownout.Token, error) {
	var t brownout.Token
	err := db.inTx(ctx, "revoke_token", func(tx *wtx) error {
		var err error
		t, err = scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = ?`, id))
		if err != nil {
			return notFound(err, "token %q not found", id)
		}
		if t.RevokedAt != nil {
			return brownout.Errorf(brownout.ECONFLICT, "token %q is already revoked", id)
		}
		revoked := at.UTC()
		t.RevokedAt = &revoked
		if _, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = ? WHERE id = ?`, revoked.UnixNano(), id); err != nil {
			return err
		}
		return insertAudit(ctx, tx, a, t.Service)
	})
	if err != nil {
		return brownout.Token{}, err
	}
	return t, nil
}
