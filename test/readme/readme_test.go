// Package readme runs the README's shell blocks as an operator would
// paste them on a fresh clone, so that the first page never lies.
package readme

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// blocks returns the bodies of the ```sh blocks of a Markdown file.
func blocks(md string) []string {
	var out []string
	var cur *strings.Builder
	sc := bufio.NewScanner(strings.NewReader(md))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```sh":
			cur = &strings.Builder{}
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return out
}

// prelude makes the script fail on the first failing command (curl
// included: an HTTP error is a failure), runs make against the
// repository, and waits for `make run` to be ready before going on.
const prelude = `set -euo pipefail
curl() { command curl --fail-with-body --max-time 20 "$@"; }
make() {
  if [ "${1:-}" = test ]; then echo "(make test: this test runs inside it)"; return 0; fi
  if [ "${1:-}" = run ]; then
    command make -C "$REPO" run >"$WORK/run.log" 2>&1 &
    for i in $(seq 1 1200); do
      if command curl -fsS "http://$ADDR/readyz" >/dev/null 2>&1 && [ -s "$DEMO_DATA/admin.token" ]; then return 0; fi
      sleep 0.1
    done
    echo "make run: not ready after 120 s"; cat "$WORK/run.log"; return 1
  fi
  command make -C "$REPO" "$@"
}
`

// TestREADMECommands runs every sh block of README.md in order, in one
// shell, against a controller started by its own `make run`. Only the
// port differs from the text (a free one instead of 8080), and `make
// test` is not run again from inside itself.
func TestREADMECommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the controller")
	}
	for _, tool := range []string{"bash", "curl", "jq", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the README's commands: %v", tool, err)
		}
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	bs := blocks(string(md))
	if len(bs) < 4 {
		t.Fatalf("found %d sh blocks in README.md; the parser is broken", len(bs))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	port := addr[strings.LastIndex(addr, ":")+1:]
	ln.Close()

	work := t.TempDir()
	// bin/ is where `make build` puts the binaries, in the repository.
	if err := os.Symlink(filepath.Join(repo, "bin"), filepath.Join(work, "bin")); err != nil {
		t.Fatal(err)
	}
	script := prelude + strings.Join(bs, "\n")
	script = strings.ReplaceAll(script, ":8080", ":"+port)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = work
	cmd.Env = append(os.Environ(),
		"REPO="+repo, "WORK="+work, "ADDR="+addr,
		"DEMO_DATA="+filepath.Join(work, "data-demo"),
		"CONTROLPLANE_SERVER=http://"+addr,
		"CONTROLPLANE_ADMIN_TOKEN=", "CONTROLPLANE_TOKEN=", "BROWNOUT_TOKEN=",
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err = cmd.Start()
	if err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		time.Sleep(200 * time.Millisecond)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	})
	werr := cmd.Wait()
	runLog, _ := os.ReadFile(filepath.Join(work, "run.log"))
	if werr != nil {
		t.Fatalf("README commands failed: %v\n--- output\n%s\n--- make run\n%s", werr, out.String(), runLog)
	}
	got := out.String()
	for _, want := range []string{`"name": "checkout"`, `"type":"state"`, `"scope":"sdk"`} {
		if !strings.Contains(got, want) {
			t.Errorf("README output lacks %q:\n%s", want, got)
		}
	}
	t.Logf("README output:\n%s", got)
}
