package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// checkLoopbackAddr refuses any host that is not a loopback address: this
// tool only ever loads the machine it runs on.
func checkLoopbackAddr(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("address %q: %w", hostport, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q is not a loopback address; only loopback targets may be load-tested", hostport)
	}
	return nil
}

func checkLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("url %q: %w", raw, err)
	}
	if u.Scheme != "http" {
		return fmt.Errorf("url %q: want http://127.0.0.1:PORT", raw)
	}
	hp := u.Host
	if u.Port() == "" {
		hp += ":80"
	}
	return checkLoopbackAddr(hp)
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// controllerProc is a controller process this tool started.
type controllerProc struct {
	bin, dataDir, addr, token string
	extra                     []string
	cmd                       *exec.Cmd
	log                       *os.File
	exited                    chan struct{}
}

func startController(ctx context.Context, bin, dataDir, token string, extra []string) (*controllerProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &controllerProc{bin: bin, dataDir: dataDir, addr: "127.0.0.1:" + strconv.Itoa(port), token: token, extra: extra}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *controllerProc) url() string { return "http://" + p.addr }

func (p *controllerProc) pid() int { return p.cmd.Process.Pid }

func (p *controllerProc) start(ctx context.Context) error {
	lf, err := os.OpenFile(filepath.Join(p.dataDir, "controller.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	args := append([]string{"serve", "--addr", p.addr, "--data", p.dataDir}, p.extra...)
	cmd := exec.Command(p.bin, args...)
	cmd.Env = append(os.Environ(), "CONTROLPLANE_ADMIN_TOKEN="+p.token)
	cmd.Stdout, cmd.Stderr = lf, lf
	// The controller dies with this tool, so that no load is left behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start %s: %w", p.bin, err)
	}
	p.cmd, p.log = cmd, lf
	p.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); lf.Close(); close(p.exited) }()
	return waitHealthy(ctx, p.url(), 20*time.Second, p.exited)
}

func waitHealthy(ctx context.Context, base string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("controller exited during start; see controller.log in its data directory")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("controller at %s not healthy within %s", base, timeout)
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *controllerProc) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop asks the controller to shut down, then kills it after a grace period.
func (p *controllerProc) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.kill()
	}
}

// baselineProc is the bare broadcaster, a child process running this same
// binary.
type baselineProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	addr   string
	pid    int
	exited chan struct{}
}

// startSelf starts this binary with args as a child that dies with this
// process, and returns its stdin and stdout.
func startSelf(args ...string) (*exec.Cmd, io.WriteCloser, io.ReadCloser, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, nil, err
	}
	cmd := exec.Command(self, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, err
	}
	return cmd, stdin, out, nil
}

func startBaseline(mode string) (*baselineProc, error) {
	cmd, stdin, out, err := startSelf("baseline-server", "--addr", "127.0.0.1:0", "--mode", mode)
	if err != nil {
		return nil, err
	}
	b := &baselineProc{cmd: cmd, stdin: stdin, pid: cmd.Process.Pid, exited: make(chan struct{})}
	line, err := bufio.NewReader(out).ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, out); _ = cmd.Wait(); close(b.exited) }()
	if err != nil {
		b.stop()
		return nil, fmt.Errorf("baseline server: %w", err)
	}
	f := strings.Fields(line) // "listening ADDR pid N"
	if len(f) < 2 {
		b.stop()
		return nil, fmt.Errorf("baseline server said %q", line)
	}
	b.addr = f[1]
	return b, nil
}

func (b *baselineProc) stop() {
	_ = b.stdin.Close()
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
}

// api is a small client of the controller's HTTP API.
type api struct {
	base, token string
	hc          *http.Client
}

func newAPI(base, token string) *api {
	return &api{base: base, token: token, hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

// do sends body (nil, []byte or a value to encode) and decodes the answer
// into out when out is non-nil and the status is 2xx.
func (a *api) do(ctx context.Context, method, path string, body any, out any) (int, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(data, out)
	}
	return resp.StatusCode, nil
}

func (a *api) createToken(ctx context.Context, service, name string) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	_, err := a.do(ctx, http.MethodPost, "/api/v1/tokens", map[string]string{"scope": "sdk", "service": service, "name": name}, &out)
	return out.Token, err
}

func (a *api) serviceVersion(ctx context.Context, service string) (uint64, error) {
	var out struct {
		Version uint64 `json:"version"`
	}
	_, err := a.do(ctx, http.MethodGet, "/api/v1/services/"+service, nil, &out)
	return out.Version, err
}

// metrics scrapes /metrics into series → value ("name{labels}" as
// written).
func (a *api) metrics(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// rssKiB reads VmRSS of a process.
func rssKiB(pid int) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				return strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	return 0, errors.New("no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
}

// cpuSeconds reads the user+system CPU time a process has used so far.
func cpuSeconds(pid int) (float64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/" + strconv.Itoa(pid) + "/stat")
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("malformed /proc/" + strconv.Itoa(pid) + "/stat")
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed /proc/" + strconv.Itoa(pid) + "/stat")
	}
	const ticks = 100 // USER_HZ on Linux
	return (ut + st) / ticks, nil
}
