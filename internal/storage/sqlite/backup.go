package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Backup writes a consistent copy of the database to w while the store
// keeps serving: VACUUM INTO a temporary file next to the database (one
// read transaction, so writers are not blocked in WAL mode), streamed and
// removed. The copy is a complete, compacted database with no WAL; it
// carries the same epoch and versions. It returns the bytes written.
func (db *DB) Backup(ctx context.Context, w io.Writer) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(db.path), ".backup-*.db")
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	name := tmp.Name()
	tmp.Close()
	defer os.Remove(name)
	// VACUUM INTO refuses an existing file, even an empty one.
	if err := os.Remove(name); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	// A connection of its own: the read pool is query_only, which refuses
	// VACUUM INTO, and the write connection would hold writers back. In WAL
	// mode this one only reads the database.
	conn, err := sql.Open("sqlite", dsn(db.path))
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `VACUUM INTO ?`, name); err != nil {
		return 0, fmt.Errorf("backup: vacuum into: %w", err)
	}
	f, err := os.Open(name)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	n, err := io.Copy(w, f)
	if err != nil {
		return n, fmt.Errorf("backup: copy: %w", err)
	}
	return n, nil
}

// ErrNotADatabase is returned by PrepareRestore for a file that is not a
// sound Brownout SQLite database.
var ErrNotADatabase = errors.New("not a Brownout SQLite database")

// PrepareRestore makes the backup at path ready to serve as a data
// directory's database: it checks its integrity, applies this binary's
// migrations (forward only), and gives it a new epoch, so that every SDK
// resyncs to the restored state at once instead of ignoring its older
// versions (docs/protocol.md, "epoch"). It returns the backup's epoch and
// the new one. The file is changed in place: pass a copy.
func PrepareRestore(ctx context.Context, path string) (oldEpoch, newEpoch string, err error) {
	raw, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return "", "", err
	}
	var check string
	err = raw.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check)
	if err == nil && check != "ok" {
		err = errors.New(check)
	}
	if err == nil {
		var n int
		err = raw.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('services', 'meta', 'audit')`).Scan(&n)
		if err == nil && n != 3 {
			err = errors.New("the services, meta and audit tables are missing")
		}
	}
	raw.Close()
	if err != nil {
		return "", "", fmt.Errorf("%w: %s: %v", ErrNotADatabase, path, err)
	}
	db, err := Open(ctx, path, nil)
	if err != nil {
		return "", "", fmt.Errorf("restore: %w", err)
	}
	defer func() {
		if cerr := db.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	if oldEpoch, err = db.Epoch(ctx); err != nil {
		return "", "", err
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	newEpoch = "e" + hex.EncodeToString(b[:])
	err = db.inTx(ctx, "restore_epoch", func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `UPDATE meta SET value = ? WHERE key = ?`, newEpoch, metaEpoch)
		return err
	})
	if err != nil {
		return "", "", fmt.Errorf("restore: new epoch: %w", err)
	}
	return oldEpoch, newEpoch, nil
}
