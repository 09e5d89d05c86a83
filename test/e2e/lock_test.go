package e2e

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSecondControllerOnSameDataDirExits guards against two controllers
// sharing one data directory: both used to run, diverge, and the first
// answered 409 to emergency mode until it was restarted. The second must
// exit non-zero at once, naming the directory and the holder's pid; once
// the holder is SIGKILLed, a new controller starts on the directory.
func TestSecondControllerOnSameDataDirExits(t *testing.T) {
	first := startController(t)
	pid := first.cmd.Process.Pid

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, binary, "serve", "--addr", "127.0.0.1:0", "--data", first.dataDir)
	second.Env = append(second.Environ(), "CONTROLPLANE_ADMIN_TOKEN="+adminToken)
	var out bytes.Buffer
	second.Stdout, second.Stderr = &out, &out
	err := second.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("second controller on %s: err %v, want a non-zero exit; output:\n%s", first.dataDir, err, out.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("second controller did not exit by itself (killed after 20s); output:\n%s", out.String())
	}
	msg := out.String()
	if !strings.Contains(msg, first.dataDir) || !strings.Contains(msg, "process "+strconv.Itoa(pid)) {
		t.Fatalf("second controller's message should name %s and process %d:\n%s", first.dataDir, pid, msg)
	}

	// The first is unharmed and still the only writer.
	api := newClient(first.url(), adminToken)
	api.must(t, "POST", "/api/v1/emergency", map[string]any{"reason": "lock test"}, 201, nil)

	// A dead holder leaves no stale lock.
	first.kill()
	first.restart()
	api.must(t, "GET", "/api/v1/emergency", nil, 200, nil)
}
