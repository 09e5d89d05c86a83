package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/brownout-io/brownout/internal/app"
	"github.com/brownout-io/brownout/internal/storage/sqlite"
)

// sqliteHeader starts every SQLite database file.
const sqliteHeader = "SQLite format 3\x00"

// backup fetches a consistent copy of a running controller's store.
func (c *cli) backup(args []string) error {
	cmd := c.command("backup", "--out FILE", `
Takes a consistent copy of a running controller's SQLite store through
its API (GET /api/v1/backup, admin token), while it keeps serving: the
controller copies its database with VACUUM INTO in one read transaction,
so writers are not blocked. The copy is written to FILE.partial, checked
(SQLite integrity check), synced and renamed to FILE, so FILE is only ever
a complete backup. --timeout bounds the whole transfer (default 10m here).`)
	out := cmd.String("out", "", "file to write the backup to (required)")
	if c.opts.timeout == defaultOptions().timeout {
		c.opts.timeout = 10 * time.Minute // a copy of a large store takes a while
	}
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	if *out == "" {
		return cmd.usagef("--out is required")
	}
	cl, ctx, cancel, err := c.connect()
	if err != nil {
		return err
	}
	defer cancel()
	partial := *out + ".partial"
	n, err := cl.download(ctx, "/api/v1/backup", partial)
	if err != nil {
		os.Remove(partial)
		return err
	}
	if err := checkSQLite(ctx, partial); err != nil {
		os.Remove(partial)
		return fmt.Errorf("backup arrived damaged: %w", err)
	}
	if err := os.Rename(partial, *out); err != nil {
		os.Remove(partial)
		return err
	}
	syncDir(filepath.Dir(*out))
	fmt.Fprintf(c.stdout, "Backup of %s written to %s (%d bytes).\n", cl.base, *out, n)
	return nil
}

// download streams a GET answer into path (mode 0600, synced).
func (cl *client) download(ctx context.Context, path, file string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cl.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+cl.token)
	resp, err := cl.http.Do(req)
	if err != nil {
		return 0, &connError{server: cl.base, err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var eb struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
			return 0, &apiError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
		}
		return 0, &apiError{Status: resp.StatusCode, Code: "unexpected_response", Message: resp.Status}
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, resp.Body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, &connError{server: cl.base, err: fmt.Errorf("read backup: %w", err)}
	}
	return n, nil
}

// checkSQLite opens path read-only and runs SQLite's integrity check.
func checkSQLite(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	head := make([]byte, len(sqliteHeader))
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil || string(head) != sqliteHeader {
		return fmt.Errorf("%s is not an SQLite database", path)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return err
	}
	if res != "ok" {
		return errors.New(res)
	}
	return nil
}

// restore puts a backup in place of a (stopped) controller's store.
func (c *cli) restore(args []string) error {
	cmd := c.command("restore", "--from FILE [--data DIR]", `
Restores a backup taken with "controlplane backup" into a data directory,
offline: the controller must be stopped (restore takes the directory's
lock and refuses while a controller holds it).

The backup is checked, migrated forward to this binary's schema and given
a new epoch: versions in a backup are older than what SDK instances may
already hold, and a new epoch tells them to take the restored state at
once rather than ignore it as stale (docs/protocol.md). Within the new
epoch versions again only go up. The store it replaces is kept beside it
as brownout.db.before-restore-TIME.`)
	from := cmd.String("from", "", "backup file to restore (required)")
	data := cmd.String("data", envOr("CONTROLPLANE_DATA", "./data"), "data directory to restore into (CONTROLPLANE_DATA)")
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	if *from == "" {
		return cmd.usagef("--from is required")
	}
	if strings.Contains(*data, "://") {
		return cmd.usagef("restore works on an SQLite data directory; restore a PostgreSQL store with pg_restore")
	}
	ctx := context.Background()
	if err := checkSQLite(ctx, *from); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	release, err := app.LockDataDir(*data)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer release()

	tmp := filepath.Join(*data, ".restore.db")
	for _, p := range []string{tmp, tmp + "-wal", tmp + "-shm"} {
		_ = os.Remove(p)
	}
	if err := copyFile(*from, tmp); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	oldEpoch, newEpoch, err := sqlite.PrepareRestore(ctx, tmp)
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	for _, p := range []string{tmp + "-wal", tmp + "-shm"} {
		_ = os.Remove(p) // closed and checkpointed: empty
	}
	dst := filepath.Join(*data, app.DBFile)
	kept := ""
	if _, err := os.Stat(dst); err == nil {
		kept = dst + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Rename(dst+suffix, kept+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("restore: keep the current store: %w", err)
			}
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	syncDir(*data)
	fmt.Fprintf(c.stdout, "Restored %s into %s.\nEpoch %s → %s: SDK instances take the restored state on reconnect.\n", *from, dst, oldEpoch, newEpoch)
	if kept != "" {
		fmt.Fprintf(c.stdout, "The store it replaced is kept as %s.\n", kept)
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
