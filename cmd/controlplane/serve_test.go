package main

import (
	"bufio"
	"context"
	"flag"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// buildBinary builds the real controlplane binary once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "controlplane")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	return bin
}

var urlLine = regexp.MustCompile(`Brownout controller on (http://\S+)`)

// TestServeGeneratesAdminTokenAndStopsCleanlyOnSIGTERM runs the real
// binary: first start generates the admin token (0600) and prints where it
// is; SIGTERM (with no drain period) closes subscribers with going-away
// and exits 0 quickly. test/e2e covers the drain.
func TestServeGeneratesAdminTokenAndStopsCleanlyOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	data := t.TempDir()
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data", data, "--drain", "0")
	cmd.Env = append(os.Environ(), "CONTROLPLANE_ADMIN_TOKEN=")
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	var base string
	var out strings.Builder
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if m := urlLine.FindStringSubmatch(sc.Text()); m != nil {
			base = m[1]
		}
		if strings.Contains(sc.Text(), "BROWNOUT_TOKEN") {
			break
		}
	}
	if base == "" {
		t.Fatalf("no URL printed; stdout:\n%s\nstderr:\n%s", out.String(), stderr.String())
	}
	tokPath := filepath.Join(data, "admin.token")
	if !strings.Contains(out.String(), tokPath) {
		t.Fatalf("token path %s not printed:\n%s", tokPath, out.String())
	}
	fi, err := os.Stat(tokPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file: %v mode %v", err, fi.Mode())
	}
	raw, _ := os.ReadFile(tokPath)
	token := strings.TrimSpace(string(raw))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws := strings.Replace(base, "http://", "ws://", 1) + "/api/v1/subscribe?service=checkout&instance=c-1"
	c, _, err := websocket.Dial(ctx, ws, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}, Subprotocols: []string{"brownout.v1"},
	})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if _, _, err := c.Read(ctx); err != nil {
		t.Fatalf("first frame: %v", err)
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusGoingAway {
		t.Fatalf("subscriber close status %d (%v), want 1001", got, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(8 * time.Second):
		t.Fatalf("still running 8 s after SIGTERM\nstderr:\n%s", stderr.String())
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("shutdown took %v", el)
	}
	if !strings.Contains(stderr.String(), "stopped") {
		t.Fatalf("no clean stop in the log:\n%s", stderr.String())
	}
}

func TestDemoDataIsKeptApart(t *testing.T) {
	real, demoDir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(real, "brownout.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkDemoMarker(real, true); err == nil || !strings.Contains(err.Error(), "real store") {
		t.Fatalf("--demo on a real store: %v", err)
	}
	if err := checkDemoMarker(real, false); err != nil {
		t.Fatalf("real start on a real store: %v", err)
	}
	if err := checkDemoMarker(demoDir, true); err != nil {
		t.Fatalf("--demo on an empty directory: %v", err)
	}
	if err := checkDemoMarker(demoDir, true); err != nil {
		t.Fatalf("--demo again: %v", err)
	}
	if err := checkDemoMarker(demoDir, false); err == nil || !strings.Contains(err.Error(), "demo data") {
		t.Fatalf("real start on demo data: %v", err)
	}
}

func TestDemoWithoutDataUsesItsOwnDirectory(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("data", "./data", "")
	t.Setenv("CONTROLPLANE_DATA", "")
	os.Unsetenv("CONTROLPLANE_DATA")
	if flagGiven(fs, "data") {
		t.Fatal("data given without a flag or environment variable")
	}
	if err := fs.Parse([]string{"--data", "x"}); err != nil || !flagGiven(fs, "data") {
		t.Fatalf("flag not seen: %v", err)
	}
}
