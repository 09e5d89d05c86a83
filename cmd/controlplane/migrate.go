package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/brownout-io/brownout/internal/app"
	"github.com/brownout-io/brownout/migrations"
)

// migrateCmd is "controlplane migrate status": what the store has applied
// and what this binary would apply on its next start. Migrations are
// forward only and run by "serve" itself; there is no "down".
func (c *cli) migrateCmd(args []string) error {
	if len(args) == 0 || args[0] != "status" {
		if len(args) > 0 && isHelp(args[0]) {
			fmt.Fprintln(c.stdout, "Usage: controlplane migrate status [--data DIR|URL]")
			return nil
		}
		return usageError{"migrate: want \"migrate status\" (migrations are applied by serve at start, forward only)"}
	}
	cmd := c.command("migrate status", "[--data DIR|URL]", `
Lists the schema migrations this binary carries and, for each, whether the
store has applied it. "serve" applies pending ones at start, in order, one
transaction each; there is no downgrade: restore a backup to go back.
Safe while a controller runs (it only reads).`)
	data := cmd.String("data", envOr("CONTROLPLANE_DATA", "./data"), "data directory or postgres:// URL (CONTROLPLANE_DATA)")
	if _, err := cmd.parse(args[1:], 0, 0); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.timeout)
	defer cancel()
	var (
		db      *sql.DB
		dialect goose.Dialect
		files   fs.FS
	)
	if strings.HasPrefix(*data, "postgres://") || strings.HasPrefix(*data, "postgresql://") {
		cc, err := pgx.ParseConfig(*data)
		if err != nil {
			// The connection string may hold a password: never echo it.
			return errors.New("--data: not a valid PostgreSQL connection string (postgres://user@host:port/db?…)")
		}
		db, dialect, files = stdlib.OpenDB(*cc), goose.DialectPostgres, migrations.Postgres()
	} else {
		path := filepath.Join(*data, app.DBFile)
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("no store at %s: %w (serve creates it on first start)", path, err)
		}
		var err error
		if db, err = sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)"); err != nil {
			return err
		}
		dialect, files = goose.DialectSQLite3, migrations.SQLite()
	}
	defer db.Close()
	p, err := goose.NewProvider(dialect, db, files, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrate status: %w", err)
	}
	st, err := p.Status(ctx)
	if err != nil {
		return fmt.Errorf("migrate status: %w", err)
	}
	tw := c.table()
	fmt.Fprintln(tw, "VERSION\tFILE\tSTATE\tAPPLIED")
	pending := 0
	for _, s := range st {
		applied := "-"
		state := "applied"
		if s.State == goose.StatePending {
			state, pending = "pending", pending+1
		} else if !s.AppliedAt.IsZero() {
			applied = s.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Source.Version, filepath.Base(s.Source.Path), state, applied)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if pending > 0 {
		fmt.Fprintf(c.stdout, "%d pending: the next \"controlplane serve\" applies them before it serves.\n", pending)
	} else {
		fmt.Fprintln(c.stdout, "Up to date.")
	}
	return nil
}
