package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/brownout-io/brownout"
)

// fileID identifies the database file on disk. The store keeps the one it
// opened: SQLite writes through its open descriptor, so a file deleted or
// replaced under a running controller would take every later write
// (SQLite reports success) and lose it at the next start.
type fileID struct {
	dev, ino uint64
}

func statID(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, errors.New("no inode information on this platform")
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, nil
}

// health is the store's view of whether its writes are durable.
type health struct {
	mu sync.Mutex
	// lost: the file was deleted or replaced; only a restart opens the new
	// one (or creates it), so writes are refused until then, unless the
	// very file comes back.
	lost error
	// failing: the last write failed for a reason the disk may recover
	// from (full, read-only, I/O error); cleared by the next write or probe
	// that succeeds.
	failing error
}

// checkFile compares the file at the path with the one opened. It returns
// a 503 *brownout.Error when they differ, and logs the first time.
func (db *DB) checkFile() error {
	if db.id == (fileID{}) {
		return nil // platform without inodes: nothing to compare
	}
	id, err := statID(db.path)
	var lost error
	switch {
	case errors.Is(err, os.ErrNotExist):
		lost = brownout.Errorf(brownout.EUNAVAILABLE, "the store's file %s was deleted under the running controller; nothing can be written durably: restore it or restart the controller", db.path)
	case err != nil:
		lost = brownout.Errorf(brownout.EUNAVAILABLE, "the store's file %s cannot be checked (%v); writes are refused until it can", db.path, errors.Unwrap(err))
	case id != db.id:
		lost = brownout.Errorf(brownout.EUNAVAILABLE, "the store's file %s was replaced under the running controller; writes are refused: restart the controller to open the new file", db.path)
	}
	db.health.mu.Lock()
	defer db.health.mu.Unlock()
	switch {
	case lost != nil && db.health.lost == nil:
		db.log.Error("store lost its file: refusing writes; restart the controller once the data directory is in place", "path", db.path, "reason", lost.Error())
	case lost == nil && db.health.lost != nil:
		db.log.Warn("store file is back: writes resume", "path", db.path)
	}
	db.health.lost = lost
	return lost
}

// writeFailed classifies a write error. Disk full, read-only and I/O
// errors become a 503 that says what is wrong, and mark the store failing
// (readiness fails) until a write succeeds; other errors pass unchanged.
func (db *DB) writeFailed(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EIO) {
			return db.markFailing(err, "the disk refused a write: "+err.Error())
		}
		return err
	}
	switch se.Code() & 0xff { // primary result code
	case sqlite3.SQLITE_FULL:
		return db.markFailing(err, "the disk holding the store is full")
	case sqlite3.SQLITE_READONLY:
		return db.markFailing(err, "the store is read-only (file or file system)")
	case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN:
		return db.markFailing(err, "the store cannot write to its disk (I/O error)")
	}
	return err
}

func (db *DB) markFailing(cause error, what string) error {
	e := brownout.Errorf(brownout.EUNAVAILABLE, "%s; nothing was stored. The controller retries on its own and is ready again once writes succeed", what)
	db.health.mu.Lock()
	first := db.health.failing == nil
	db.health.failing = e
	db.health.mu.Unlock()
	if first {
		db.log.Error("store writes failing: refusing to acknowledge changes until the disk accepts writes again", "path", db.path, "reason", what, "err", cause)
	}
	return e
}

// writeSucceeded clears a failing state.
func (db *DB) writeSucceeded() {
	db.health.mu.Lock()
	was := db.health.failing
	db.health.failing = nil
	db.health.mu.Unlock()
	if was != nil {
		db.log.Warn("store writes succeed again", "path", db.path)
	}
}

// probeWrite commits one small real write (the header's user_version,
// rewritten with its own value), so that readiness knows whether the disk
// takes writes again without waiting for a client's.
func (db *DB) probeWrite(ctx context.Context) error {
	var v int64
	if err := db.write.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return db.writeFailed(err)
	}
	if _, err := db.write.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
		return db.writeFailed(err)
	}
	if err := db.checkFile(); err != nil {
		return err
	}
	db.writeSucceeded()
	return nil
}

// Durable reports whether writes are durable now: the file is the one
// opened and the last write did not fail. A failing store probes with a
// real write.
func (db *DB) Durable(ctx context.Context) error {
	if err := db.checkFile(); err != nil {
		return err
	}
	db.health.mu.Lock()
	failing := db.health.failing
	db.health.mu.Unlock()
	if failing != nil {
		return db.probeWrite(ctx)
	}
	return nil
}
