// Package migrations holds the SQLite schema of the embedded store as
// append-only SQL files named NNNN_name.sql, applied in order on start by
// internal/storage (goose, one file per transaction). Never edit a file that
// has shipped; add the next number instead.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
