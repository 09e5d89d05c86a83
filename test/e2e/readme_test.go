package e2e

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeBlocks returns the README's sh code blocks that run commands
// against a controller: those with curl or bin/controlplane in them.
func readmeBlocks(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	var cur *strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && line == "```sh":
			cur = &strings.Builder{}
		case cur != nil && line == "```":
			b := cur.String()
			if strings.Contains(b, "curl ") || strings.Contains(b, "bin/controlplane ") {
				blocks = append(blocks, b)
			}
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return blocks
}

var readmeAddr = regexp.MustCompile(`(localhost|127\.0\.0\.1):8080`)

// TestREADMECommandsWork runs every curl and operator command the README
// shows, as written, against a fresh controller (the real binary) whose
// data directory is ./data of the shell's working directory, as after
// `make run`. The only change is the address: the controller listens on a
// free port rather than 8080. curl runs with --fail-with-body, so an
// example that answers 4xx or 5xx fails the test; three of them used to
// (they send curl's default form content type).
func TestREADMECommandsWork(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the README's examples: %v", tool, err)
		}
	}
	blocks := readmeBlocks(t)
	if len(blocks) < 2 {
		t.Fatalf("found %d README blocks with curl or bin/controlplane, want the API and CLI ones", len(blocks))
	}
	work := t.TempDir()
	if err := os.MkdirAll(filepath.Join(work, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binary, filepath.Join(work, "bin", "controlplane")); err != nil {
		t.Fatal(err)
	}
	ctl := startController(t)
	ctl.kill()
	ctl.dataDir = filepath.Join(work, "data") // the token is generated into ./data/admin.token
	ctl.env = []string{"CONTROLPLANE_ADMIN_TOKEN="}
	ctl.restart()

	for i, block := range blocks {
		script := "set -euo pipefail\ncurl() { command curl --fail-with-body --max-time 10 \"$@\"; }\n" +
			"export BROWNOUT_TOKEN=$(cat data/admin.token)\n" +
			readmeAddr.ReplaceAllString(block, ctl.addr)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, "bash", "-x", "-c", script)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "CONTROLPLANE_SERVER="+ctl.url(), "CONTROLPLANE_TOKEN=", "BROWNOUT_TOKEN=")
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("README block %d failed: %v\n--- block\n%s--- output\n%s", i+1, err, block, out)
		}
	}
	// The examples did what they say: the override is in place.
	api := newClient(ctl.url(), readToken(t, filepath.Join(work, "data", "admin.token")))
	var list struct {
		Items []struct{ Reason string } `json:"items"`
	}
	api.must(t, http.MethodGet, "/api/v1/overrides?service=checkout", nil, http.StatusOK, &list)
	if len(list.Items) == 0 {
		t.Fatalf("after the README's examples checkout has no override")
	}
}

func readToken(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
