package sqlite

import (
	"context"
	"fmt"
	"time"
)

// EndSession records that the dashboard session id ended before its
// expiry, so that its cookie is refused from now on, also after a restart.
// The same transaction forgets sessions that have expired by now. Ending a
// session twice is not an error.
func (db *DB) EndSession(ctx context.Context, id string, expires, now time.Time) error {
	return db.inTx(ctx, "end_session", func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM ended_sessions WHERE expires_at <= ?`, unixNano(now)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO ended_sessions (id, expires_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`, id, unixNano(expires))
		return err
	})
}

// SessionEnded reports whether EndSession has ended the session id.
func (db *DB) SessionEnded(ctx context.Context, id string) (bool, error) {
	var n int
	err := db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM ended_sessions WHERE id = ?`, id).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("session ended: %w", err)
	}
	return n > 0, nil
}
