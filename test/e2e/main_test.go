// Package e2e tests the real controller binary from the outside: it is
// built once in TestMain, started as a separate process on a loopback port,
// killed with SIGKILL and restarted, and driven only through its HTTP and
// websocket API.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the controller built by TestMain.
var binary string

const adminToken = "bo_e2e-admin-token-0123456789abcdef"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "brownout-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "controlplane")
	build := exec.Command("go", "build", "-o", binary, "github.com/brownout-io/brownout/cmd/controlplane")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build controller:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// controller is one controller process; start it again after kill with
// restart (same address, same data).
type controller struct {
	t       testing.TB
	addr    string
	dataDir string
	args    []string
	cmd     *exec.Cmd
	log     *bytes.Buffer
	logMu   *sync.Mutex
	exited  chan struct{}
}

// startController runs the binary on a free loopback port with a fresh data
// directory. It is killed when the test ends.
func startController(t testing.TB, args ...string) *controller {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := &controller{t: t, addr: addr, dataDir: t.TempDir(), args: args, log: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	c.restart()
	t.Cleanup(c.kill)
	return c
}

func (c *controller) url() string { return "http://" + c.addr }

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (c *controller) restart() {
	c.t.Helper()
	args := append([]string{"serve", "--addr", c.addr, "--data", c.dataDir, "--log-level", "info"}, c.args...)
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "CONTROLPLANE_ADMIN_TOKEN="+adminToken)
	w := lockedWriter{mu: c.logMu, w: c.log}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start controller: %v", err)
	}
	c.cmd = cmd
	exited := make(chan struct{})
	c.exited = exited
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(c.url() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			c.t.Fatalf("controller exited during start:\n%s", c.logText())
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("controller not ready within 20s:\n%s", c.logText())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (c *controller) kill() {
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
	c.cmd = nil
}

func (c *controller) logText() string {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	return c.log.String()
}

// client is a small API client.
type client struct {
	base, token string
	hc          *http.Client
}

func newClient(base, token string) *client {
	return &client{base: base, token: token, hc: &http.Client{Timeout: 10 * time.Second}}
}

// do sends body (nil, string or a value to encode) and returns the status
// and body; status 0 means no answer arrived.
func (c *client) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err // an answer cut short is no acknowledgement
	}
	return resp.StatusCode, data, nil
}

// must is do that fails the test unless the status is want, decoding the
// answer into out when out is non-nil.
func (c *client) must(t testing.TB, method, path string, body any, want int, out any) {
	t.Helper()
	st, data, err := c.do(context.Background(), method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if st != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, st, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
