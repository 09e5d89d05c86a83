// Package migrations holds the schema of each store as append-only SQL
// files, one directory per dialect (sqlite/, postgres/) with one numbered
// history: NNNN_name.sql, applied in order on start by the store (goose,
// one file per transaction). Never edit a file that has shipped; add the
// next number instead, in every dialect's directory (a test holds both
// directories to the same names; a change one dialect does not need is a
// file whose Up section is a comment saying why and "SELECT 1;").
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// SQLite returns the SQLite store's migrations.
func SQLite() fs.FS { return sub("sqlite") }

// Postgres returns the PostgreSQL store's migrations.
func Postgres() fs.FS { return sub("postgres") }

func sub(dir string) fs.FS {
	f, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // dir is a constant of this package, embedded above
	}
	return f
}
