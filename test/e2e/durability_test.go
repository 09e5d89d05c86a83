package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type apiError struct {
	Error struct{ Code, Message string } `json:"error"`
}

// expect503 sends an override and wants a 503 whose message contains
// part: never a 201 for what cannot be durable, never a bare 500.
func expect503(t *testing.T, api *client, part string) {
	t.Helper()
	st, body, err := api.do(context.Background(), http.MethodPost, "/api/v1/overrides", map[string]any{"service": "dur", "level": 2, "reason": "after the loss"})
	if err != nil {
		t.Fatal(err)
	}
	var e apiError
	_ = json.Unmarshal(body, &e)
	if st != http.StatusServiceUnavailable || !strings.Contains(e.Error.Message, part) {
		t.Fatalf("override after the store lost its footing: %d %s, want 503 saying %q", st, body, part)
	}
}

func readyStatus(t *testing.T, ctl *controller) (int, string) {
	t.Helper()
	resp, err := http.Get(ctl.url() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDeletedDataDirIsNeverAcknowledged replays the finding: with the data
// directory deleted under the running controller, overrides and a token
// answered 201, /readyz said ready, and all of it was gone after the
// restart. Now writes answer 503 saying what happened, /readyz fails, and
// the log asks for a restart.
func TestDeletedDataDirIsNeverAcknowledged(t *testing.T) {
	ctl := startController(t)
	api := newClient(ctl.url(), adminToken)
	api.must(t, http.MethodPost, "/api/v1/overrides", map[string]any{"service": "dur", "level": 1, "reason": "before"}, http.StatusCreated, nil)

	if err := os.RemoveAll(ctl.dataDir); err != nil {
		t.Fatal(err)
	}
	expect503(t, api, "deleted")
	st, body, _ := api.do(context.Background(), http.MethodPost, "/api/v1/tokens", map[string]any{"scope": "viewer", "name": "ghost"})
	if st != http.StatusServiceUnavailable {
		t.Fatalf("token after the deletion: %d %s, want 503", st, body)
	}
	if st, body := readyStatus(t, ctl); st != http.StatusServiceUnavailable || !strings.Contains(body, "deleted") {
		t.Fatalf("/readyz after the deletion: %d %s, want 503 saying deleted", st, body)
	}
	if !strings.Contains(ctl.logText(), "restart the controller") {
		t.Fatalf("no log line asks for a restart:\n%s", ctl.logText())
	}
	// A restart recreates the directory and serves again.
	ctl.kill()
	ctl.restart()
	api.must(t, http.MethodPost, "/api/v1/overrides", map[string]any{"service": "dur", "level": 1, "reason": "after restart"}, http.StatusCreated, nil)
}

// TestReplacedDBFileIsNoticed: a file put back with the same name (a
// restore from backup while running) is another inode; the controller
// must not go on writing into the one it opened.
func TestReplacedDBFileIsNoticed(t *testing.T) {
	ctl := startController(t)
	api := newClient(ctl.url(), adminToken)
	api.must(t, http.MethodPost, "/api/v1/overrides", map[string]any{"service": "dur", "level": 1, "reason": "before"}, http.StatusCreated, nil)
	db := filepath.Join(ctl.dataDir, "brownout.db")
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(db); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, data, 0o600); err != nil {
		t.Fatal(err)
	}
	expect503(t, api, "replaced")
	if st, _ := readyStatus(t, ctl); st != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with a replaced file: %d, want 503", st)
	}
}

// smallDisk mounts a tmpfs of size bytes for a test's data directory. It
// needs root (CAP_SYS_ADMIN): without it the test skips, except under
// CI=true, where it fails.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a tmpfs for the disk tests: %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// waitReady polls /readyz until it answers want.
func waitReady(t *testing.T, ctl *controller, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, body := readyStatus(t, ctl)
		if st == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %s, want %d within 10s", st, body, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFullDiskAnswers503AndRecovers: with the disk full, writes answer 503
// naming the cause (never 201, never a bare 500) and /readyz fails; once
// there is room the controller is ready again without a restart, and
// everything it acknowledged is there after one. (A read-only file system
// cannot be remounted under a live writer; the sqlite package's tests
// cover SQLite's read-only refusal.)
func TestFullDiskAnswers503AndRecovers(t *testing.T) {
	mnt := smallDisk(t, "16m")
	ctl := startController(t)
	ctl.kill()
	ctl.dataDir = filepath.Join(mnt, "data")
	ctl.restart()
	api := newClient(ctl.url(), adminToken)
	var acked []string
	create := func() (int, []byte) {
		st, body, err := api.do(context.Background(), http.MethodPost, "/api/v1/overrides", map[string]any{"service": "dur", "level": 1, "reason": strings.Repeat("r", 500)})
		if err != nil {
			t.Fatal(err)
		}
		if st == http.StatusCreated {
			var o struct{ ID string }
			_ = json.Unmarshal(body, &o)
			acked = append(acked, o.ID)
			api.must(t, http.MethodDelete, "/api/v1/overrides/"+o.ID, nil, http.StatusOK, nil) // stay under --max-overrides
		}
		return st, body
	}
	if st, body := create(); st != http.StatusCreated {
		t.Fatalf("first override: %d %s", st, body)
	}

	// Fill the disk.
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	full := false
	for range 2000 {
		st, body := create()
		if st == http.StatusCreated {
			continue
		}
		var e apiError
		_ = json.Unmarshal(body, &e)
		if st != http.StatusServiceUnavailable || !strings.Contains(e.Error.Message, "full") {
			t.Fatalf("write on a full disk: %d %s, want 503 saying full", st, body)
		}
		full = true
		break
	}
	if !full {
		t.Fatal("2000 overrides on a full 16 MiB disk were all acknowledged")
	}
	waitReady(t, ctl, http.StatusServiceUnavailable)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ctl, http.StatusOK) // on its own
	if st, body := create(); st != http.StatusCreated {
		t.Fatalf("override once the disk has room: %d %s", st, body)
	}

	// Everything acknowledged survived.
	ctl.kill()
	ctl.restart()
	for _, id := range acked {
		api.must(t, http.MethodGet, "/api/v1/overrides/"+id, nil, http.StatusOK, nil)
	}
	t.Logf("%d overrides acknowledged, all there after a restart", len(acked))
}
