package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"
)

// profiler is one measurement's CPU profiles: this tool's own (its
// clients) and the server's, fetched from its pprof address.
type profiler struct {
	tool     *os.File
	finished chan struct{}
	err      error
}

// startProfiles starts a profile of this process and, when debugAddr is
// set, fetches one of the server for d into dir/NAME-server.pprof.
func startProfiles(ctx context.Context, dir, name, debugAddr string, d time.Duration) (*profiler, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(dir, name+"-clients.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	p := &profiler{tool: f, finished: make(chan struct{})}
	go func() {
		defer close(p.finished)
		if debugAddr == "" {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
			return
		}
		p.err = fetchProfile(ctx, debugAddr, d, filepath.Join(dir, name+"-server.pprof"))
	}()
	return p, nil
}

func (p *profiler) done() bool {
	select {
	case <-p.finished:
		return true
	default:
		return false
	}
}

// stop waits for the server's profile and ends this process's.
func (p *profiler) stop() error {
	<-p.finished
	pprof.StopCPUProfile()
	if err := p.tool.Close(); err != nil {
		return err
	}
	return p.err
}

func fetchProfile(ctx context.Context, addr string, d time.Duration, path string) error {
	u := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d/time.Second))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("server profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("server profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
