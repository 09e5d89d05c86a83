package migrations

import (
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestFileNames keeps the files append-only and numbered without gaps, so
// that goose applies them in the order they were written.
func TestFileNames(t *testing.T) {
	t.Parallel()
	sq, pg := checkFiles(t, SQLite()), checkFiles(t, Postgres())
	// One numbered history: every dialect has the same files, so that a
	// migration is never written for one store only.
	if !slices.Equal(sq, pg) {
		t.Fatalf("sqlite has %v, postgres has %v: want the same NNNN_name.sql in both", sq, pg)
	}
}

func checkFiles(t *testing.T, fsys fs.FS) []string {
	t.Helper()
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no migrations embedded")
	}
	re := regexp.MustCompile(`^(\d{4})_[a-z0-9_]+\.sql$`)
	for i, name := range names {
		m := re.FindStringSubmatch(name)
		if m == nil {
			t.Errorf("%s: want NNNN_name.sql", name)
			continue
		}
		if want := fmt.Sprintf("%04d", i+1); m[1] != want {
			t.Errorf("%s: got number %s, want %s (no gaps, no duplicates)", name, m[1], want)
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(body), "-- +goose Up") {
			t.Errorf("%s: no -- +goose Up section", name)
		}
	}
	return names
}
