package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/brownout-io/brownout/sdk"
)

// boClient is one SDK instance and when it last changed level.
type boClient struct {
	c     *sdk.Client
	level atomic.Int32
	at    atomic.Int64
}

type boFleet struct {
	clients []*boClient
}

func (f *boFleet) connect(ctx context.Context, base, token string, n, par int) error {
	f.clients = make([]*boClient, n)
	log := slog.New(slog.DiscardHandler)
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i := range n {
		bc := &boClient{}
		bc.level.Store(-1)
		c, err := sdk.Connect(ctx, base, "peers", "i-"+itoa(i), sdk.WithToken(token), sdk.WithLogger(log), sdk.WithReportInterval(-1))
		if err != nil {
			return err
		}
		bc.c = c
		c.OnChange(func(_, st sdk.State) {
			if st.Source == sdk.SourceController {
				bc.at.Store(time.Now().UnixNano())
				bc.level.Store(int32(st.Level))
			}
		})
		f.clients[i] = bc
		// Connect returns at once; pace the dials so that the handshakes
		// do not all land in the same millisecond.
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for bc.level.Load() < 0 && ctx.Err() == nil {
				// The first state may have been delivered before OnChange
				// was registered: then only State shows it.
				if st := c.State(); st.Source == sdk.SourceController {
					bc.level.CompareAndSwap(-1, int32(st.Level))
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// change creates an override to level and waits until every instance
// serves it.
func (f *boFleet) change(ctx context.Context, a *api, level int) (time.Duration, error) {
	t0 := time.Now()
	if err := a.do(ctx, http.MethodPost, "/api/v1/overrides", map[string]any{"service": "peers", "level": level, "reason": "peers benchmark"}, nil); err != nil {
		return 0, err
	}
	return waitAll(ctx, t0, len(f.clients), func(i int) (bool, int64) {
		c := f.clients[i]
		return c.level.Load() == int32(level), c.at.Load()
	})
}

func (f *boFleet) close() {
	var wg sync.WaitGroup
	for _, c := range f.clients {
		if c != nil {
			wg.Add(1)
			go func() { defer wg.Done(); c.c.Close() }()
		}
	}
	wg.Wait()
}

// proc is a server process started by this tool.
type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) stop() {
	if p.stdin != nil {
		_ = p.stdin.Close()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// startController runs the controller on a free loopback port, with its
// pprof on debugAddr when that is set.
func startController(ctx context.Context, bin, dir, debugAddr string) (*proc, string, string, error) {
	token := randomToken()
	addr, err := freeAddr()
	if err != nil {
		return nil, "", "", err
	}
	lf, err := os.Create(filepath.Join(dir, "controller.log"))
	if err != nil {
		return nil, "", "", err
	}
	cmd := exec.Command(bin, "serve", "--addr", addr, "--data", dir,
		"--max-conns-per-token", "100000", "--max-conns", "0", "--max-conns-per-addr", "0",
		"--max-subscribers", "0", "--max-subscribers-per-addr", "0", "--log-level", "warn")
	if debugAddr != "" {
		cmd.Args = append(cmd.Args, "--debug-addr", debugAddr)
	}
	cmd.Env = append(os.Environ(), "CONTROLPLANE_ADMIN_TOKEN="+token)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, "", "", err
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); lf.Close(); close(p.exited) }()
	base := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-p.exited:
			return nil, "", "", fmt.Errorf("controller exited; see %s", filepath.Join(dir, "controller.log"))
		case <-ctx.Done():
			p.stop()
			return nil, "", "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, "", "", fmt.Errorf("controller not healthy within 20s")
		}
	}
	return p, base, token, nil
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "bo_" + hex.EncodeToString(b)
}

// api is a minimal client of the controller's HTTP API.
type api struct {
	base, token string
	hc          *http.Client
}

func (a *api) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
