package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
)

const metaEpoch = "epoch"

// Epoch returns this database's epoch: a random identifier made when the
// database is first used and kept for its life. Versions count within an
// epoch; a client that sees another epoch knows the controller's history
// was reset (a new data directory) and that versions start over.
func (db *DB) Epoch(ctx context.Context) (string, error) {
	var e string
	err := db.read.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, metaEpoch).Scan(&e)
	if err == nil && e != "" {
		return e, nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("read epoch: %w", err)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	// The "e" keeps the value a string in meta's INTEGER column: an
	// all-digit hex string would be stored as a number and lose leading
	// zeros.
	fresh := "e" + hex.EncodeToString(b[:])
	err = db.inTx(ctx, "epoch", func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, metaEpoch, fresh); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, metaEpoch).Scan(&e)
	})
	if err != nil {
		return "", fmt.Errorf("create epoch: %w", err)
	}
	return e, nil
}
