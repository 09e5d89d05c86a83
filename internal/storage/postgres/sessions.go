package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// EndSession records that the dashboard session id ended before its
// expiry, so that its cookie is refused from now on by every replica. The
// same transaction forgets sessions that have expired by now. Ending a
// session twice is not an error.
func (db *DB) EndSession(ctx context.Context, id string, expires, now time.Time) error {
	return db.inTx(ctx, "end_session", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM ended_sessions WHERE expires_at <= $1`, unixNano(now)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO ended_sessions (id, expires_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, id, unixNano(expires))
		return err
	})
}

// SessionEnded reports whether EndSession has ended the session id.
func (db *DB) SessionEnded(ctx context.Context, id string) (bool, error) {
	var ended bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ended_sessions WHERE id = $1)`, id).Scan(&ended)
	if err != nil {
		return false, fmt.Errorf("session ended: %w", translate(err))
	}
	return ended, nil
}
