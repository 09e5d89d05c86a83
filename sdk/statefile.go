package sdk

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

const stateFileFormat = 1

// writeFileAtomic replaces path with data so that a reader (or a process
// restarted after a crash) sees either the old content or the new, never a
// mix: write a temporary file in the same directory, fsync it, rename it over
// path, fsync the directory.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temp: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write temp: %w", err)
	}
	if err = f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync temp: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close temp: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	// The rename is durable only once the directory is; not every platform
	// can sync a directory, and the file is already safe from tearing.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func saveState(path string, r *remembered) error {
	r.Format = stateFileFormat
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	if err := writeFileAtomic(path, append(data, '\n')); err != nil {
		return fmt.Errorf("save state file: %w", err)
	}
	return nil
}

// loadState reads a state file written by saveState for service.
func loadState(path, service string) (*remembered, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read state file: %w", err)
	}
	var r remembered
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode state file: %w", err)
	}
	if r.Format != stateFileFormat {
		return nil, fmt.Errorf("state file format %d, want %d", r.Format, stateFileFormat)
	}
	if r.State.Service != service {
		return nil, fmt.Errorf("state file is for service %q, not %q", r.State.Service, service)
	}
	if l := r.State.Level; !l.Valid() {
		return nil, fmt.Errorf("state file level %d out of range", l)
	}
	return &r, nil
}
