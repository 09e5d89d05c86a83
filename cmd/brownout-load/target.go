package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// target is the controller under test: one this tool started, or one
// given by --url.
type target struct {
	url, token string
	pid        int
	proc       *controllerProc
	api        *api
	services   []string
	tokens     map[string][]string
	cleanup    func()
}

// perToken is how many subscriptions one SDK token carries here, well below
// the controller's per-token limit.
const perToken = 2500

// openTarget starts a fresh controller (with --bin) or attaches to --url,
// then creates the services and SDK tokens for n subscribers.
func openTarget(ctx context.Context, o *options, n int, name string) (*target, error) {
	t := &target{url: o.url, token: o.token, pid: o.pid, cleanup: func() {}}
	if o.bin != "" {
		parent := o.dataDir
		remove := false
		if parent == "" {
			d, err := os.MkdirTemp("", "brownout-load-")
			if err != nil {
				return nil, err
			}
			parent, remove = d, true
		}
		dir := filepath.Join(parent, name)
		_ = os.RemoveAll(dir)
		tok := randomToken()
		args := append([]string{"--max-conns-per-token", "100000", "--max-conns", "0", "--max-conns-per-addr", "0", "--max-subscribers", "0", "--max-subscribers-per-addr", "0", "--log-level", "warn"}, o.extra...)
		p, err := startController(ctx, o.bin, dir, tok, args)
		if err != nil {
			if remove {
				os.RemoveAll(parent)
			}
			return nil, err
		}
		t.url, t.token, t.pid, t.proc = p.url(), tok, p.pid(), p
		t.cleanup = func() {
			p.stop()
			if remove {
				os.RemoveAll(parent)
			}
		}
	}
	t.api = newAPI(t.url, t.token)
	if err := t.prepare(ctx, o.services, n); err != nil {
		t.cleanup()
		return nil, err
	}
	return t, nil
}

func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "bo_load-" + hex.EncodeToString(b[:])
}

// prepare creates services (by one report each) and SDK tokens.
func (t *target) prepare(ctx context.Context, services, n int) error {
	t.tokens = map[string][]string{}
	t.services = make([]string, services)
	for i := range t.services {
		t.services[i] = fmt.Sprintf("load-%03d", i)
	}
	perSvc := (n + services - 1) / services
	for i, s := range t.services {
		// The seed report comes from the service's first subscriber's
		// instance, so that it adds no instance of its own (a service holds
		// at most 10,000).
		body := fmt.Sprintf(`{"service":%q,"instance":"i-%d","cpu_percent":20,"memory_percent":30,"requests":10,"errors":0}`, s, i)
		if _, err := t.api.do(ctx, http.MethodPost, "/api/v1/reports", []byte(body), nil); err != nil {
			return fmt.Errorf("create service %s: %w", s, err)
		}
		for k := 0; k == 0 || k*perToken < perSvc; k++ {
			tok, err := t.api.createToken(ctx, s, "load-"+strconv.Itoa(k))
			if err != nil {
				return err
			}
			t.tokens[s] = append(t.tokens[s], tok)
		}
	}
	return nil
}

func (t *target) wsBase() string { return "ws" + strings.TrimPrefix(t.url, "http") }

// sample reads RSS and goroutines of the controller.
func (t *target) sample(ctx context.Context) (rss int64, goroutines float64, err error) {
	if t.pid > 0 {
		if rss, err = rssKiB(t.pid); err != nil {
			return 0, 0, err
		}
	}
	m, err := t.api.metrics(ctx)
	if err != nil {
		return rss, 0, err
	}
	return rss, m["go_goroutines"], nil
}

// settle waits d (the controller idles) then samples.
func (t *target) settleSample(ctx context.Context, d time.Duration) (int64, float64, error) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	return t.sample(ctx)
}

func (t *target) logTail(w io.Writer) {
	if t.proc == nil {
		return
	}
	data, err := os.ReadFile(filepath.Join(t.proc.dataDir, "controller.log"))
	if err != nil {
		return
	}
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	fmt.Fprintf(w, "--- controller log (tail) ---\n%s\n", data)
}
