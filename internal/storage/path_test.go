package storage

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOpenCreatesFileAtPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data dir?#%")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "brownout.db")
	mustOpenPath(t, path)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file not at %s: %v", path, err)
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
