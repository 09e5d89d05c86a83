package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the lock file's name inside the data directory. The
// controller holding it writes its process id into it.
const LockFile = "controlplane.lock"

// ErrDataDirLocked means another controller holds the data directory.
var ErrDataDirLocked = errors.New("data directory in use by another controller")

// dirLock is an exclusive flock on the data directory's lock file, held
// for the life of the process. The kernel releases it when the process
// dies, however it dies, so a SIGKILLed controller never leaves a stale
// lock behind.
type dirLock struct {
	f *os.File
}

// lockDataDir takes the data directory's lock without waiting. When
// another process holds it, the error wraps ErrDataDirLocked and names
// the directory and, when it can be read, the holder's process id.
func lockDataDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another process"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
					holder = "process " + strconv.Itoa(pid)
				}
			}
			abs, aerr := filepath.Abs(dir)
			if aerr != nil {
				abs = dir
			}
			return nil, fmt.Errorf("%w: %s is held by %s (lock file %s); stop that controller or choose another --data", ErrDataDirLocked, abs, holder, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The pid is informational: the lock is the flock, not the content.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		_ = f.Sync()
	}
	return &dirLock{f: f}, nil
}

// release drops the lock. The file stays: removing it would let a third
// process lock a new file while a second still waits on the old one.
func (l *dirLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// LockDataDir takes the data directory's lock for an offline operation
// (restore), so that it never runs under a live controller. The error
// wraps ErrDataDirLocked when a controller holds it. Call release when
// done.
func LockDataDir(dir string) (release func() error, err error) {
	l, err := lockDataDir(dir)
	if err != nil {
		return nil, err
	}
	return l.release, nil
}
