package sqlite

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOpenCreatesFileAtPath(t *testing.T) {
	t.Parallel()
	// The directory does not exist yet, and its name needs escaping in a
	// URI.
	dir := filepath.Join(t.TempDir(), "data dir?#%", "sub")
	path := filepath.Join(dir, "brownout.db")
	mustOpenPath(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("database file not at %s: %v", path, err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Fatalf("got mode %v, want 0600: the file holds token hashes", got)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		switch e.Name() {
		case "brownout.db", "brownout.db-wal", "brownout.db-shm":
		default:
			t.Errorf("unexpected file %q next to the database", e.Name())
		}
	}
}
