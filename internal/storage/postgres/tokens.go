package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/brownout-io/brownout"
)

const tokenColumns = `id, name, scope, service, hash, created_at, created_by, revoked_at`

func scanToken(sc pgx.Row) (brownout.Token, error) {
	var t brownout.Token
	var created int64
	var revoked *int64
	if err := sc.Scan(&t.ID, &t.Name, &t.Scope, &t.Service, &t.Hash, &created, &t.CreatedBy, &revoked); err != nil {
		return brownout.Token{}, err
	}
	t.CreatedAt = fromNano(created)
	t.RevokedAt = fromNullNano(revoked)
	return t, nil
}

// CreateToken stores t (ID and Hash chosen by the caller) and appends a, in
// one transaction, and announces it on the change feed. A duplicate ID or
// Hash is ECONFLICT.
func (db *DB) CreateToken(ctx context.Context, t brownout.Token, a brownout.AuditEntry) error {
	if t.ID == "" || len(t.Hash) == 0 {
		return brownout.Errorf(brownout.EBADREQUEST, "token id and hash must not be empty")
	}
	return db.inTx(ctx, "create_token", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx,
			`INSERT INTO tokens (`+tokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			t.ID, t.Name, t.Scope, t.Service, t.Hash, unixNano(t.CreatedAt), t.CreatedBy, nullNano(t.RevokedAt))
		if err != nil {
			return err
		}
		if err := insertAudit(ctx, tx, a, t.Service); err != nil {
			return err
		}
		return db.notify(ctx, tx, brownout.Change{Kind: brownout.ChangeToken, ID: t.ID})
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

// GetToken returns token id, revoked or not; ENOTFOUND when unknown. A
// replica told of a token change on the feed reads it with this.
func (db *DB) GetToken(ctx context.Context, id string) (brownout.Token, error) {
	t, err := scanToken(db.pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = $1`, id))
	if err != nil {
		return brownout.Token{}, fmt.Errorf("get token: %w", notFound(err, "token %q not found", id))
	}
	return t, nil
}

func (db *DB) queryTokens(ctx context.Context, op, query string) ([]brownout.Token, error) {
	rows, err := db.pool.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, translate(err))
	}
	defer rows.Close()
	var out []brownout.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, translate(err))
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, translate(err))
	}
	return out, nil
}

// RevokeToken marks token id revoked at at and appends a, in one
// transaction, announces the revocation on the change feed (so that every
// replica closes the token's sockets) and returns the revoked token. An
// unknown id is ENOTFOUND; a token already revoked is ECONFLICT.
func (db *DB) RevokeToken(ctx context.Context, id string, at time.Time, a brownout.AuditEntry) (brownout.Token, error) {
	var t brownout.Token
	err := db.inTx(ctx, "revoke_token", func(tx pgx.Tx) error {
		var err error
		t, err = scanToken(tx.QueryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return notFound(err, "token %q not found", id)
		}
		if t.RevokedAt != nil {
			return brownout.Errorf(brownout.ECONFLICT, "token %q is already revoked", id)
		}
		revoked := at.UTC()
		t.RevokedAt = &revoked
		if _, err := tx.Exec(ctx, `UPDATE tokens SET revoked_at = $1 WHERE id = $2`, revoked.UnixNano(), id); err != nil {
			return err
		}
		if err := insertAudit(ctx, tx, a, t.Service); err != nil {
			return err
		}
		return db.notify(ctx, tx, brownout.Change{Kind: brownout.ChangeToken, ID: id})
	})
	if err != nil {
		return brownout.Token{}, err
	}
	return t, nil
}
