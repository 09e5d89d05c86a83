package postgres

import (
	"context"
	"fmt"
)

// Epoch returns this database's epoch: made by the first migration, in the
// database, and kept for its life, so every replica on the database
// reports the same one. Versions count within an epoch.
func (db *DB) Epoch(ctx context.Context) (string, error) {
	var e string
	if err := db.pool.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'epoch'`).Scan(&e); err != nil {
		return "", fmt.Errorf("read epoch: %w", translate(err))
	}
	return e, nil
}
