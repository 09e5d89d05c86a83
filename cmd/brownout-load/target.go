package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// target is the controller under test: one this tool started, or one
// given by --url.
type target struct {
	url, token string
	pid        int
	proc       *controllerProc
	// urls are every replica's, urls[from] the one changes are made on
	// (a follower when there are several; url is the same).
	urls     []string
	from     int
	pids     []int // every replica's, when this tool started them
	procs    []*controllerProc
	api      *api
	services []string
	tokens   map[string][]string
	cleanup  func()
}

// perToken is how many subscriptions one SDK token carries here, well below
// the controller's per-token limit.
const perToken = 2500

// openTarget starts a fresh controller (with --bin) or attaches to --url,
// then creates the services and SDK tokens for n subscribers.
func openTarget(ctx context.Context, o *options, n int, name string) (*target, error) {
	t := &target{url: o.url, token: o.token, pid: o.pid, cleanup: func() {}}
	if o.replicas > 1 {
		if err := t.startReplicas(ctx, o, name); err != nil {
			return nil, err
		}
	} else if o.bin != "" {
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
		args := append([]string{"--max-conns-per-token", "100000", "--max-conns", "0", "--max-conns-per-addr", "0", "--max-subscribers", "0", "--max-subscribers-per-addr", "0", "--log-level", "warn"}, o.debugArgs(0)...)
		args = append(args, o.extra...)
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
	if len(t.urls) == 0 {
		t.urls = []string{t.url}
		if t.pid > 0 {
			t.pids = []int{t.pid}
		}
	}
	t.api = newAPI(t.url, t.token)
	if err := t.prepare(ctx, o.services, n); err != nil {
		t.cleanup()
		return nil, err
	}
	if len(t.urls) > 1 {
		if err := t.awaitEverywhere(ctx); err != nil {
			t.cleanup()
			return nil, err
		}
	}
	return t, nil
}

// debugArgs are controller i's flags for --debug-port.
func (o *options) debugArgs(i int) []string {
	if o.debugPort == 0 {
		return nil
	}
	return []string{"--debug-addr", "127.0.0.1:" + strconv.Itoa(o.debugPort+i)}
}

// startReplicas starts o.replicas controllers over a fresh PostgreSQL
// database and picks the replica to make changes on (--change-on): a
// follower, or the leader.
func (t *target) startReplicas(ctx context.Context, o *options, name string) error {
	dsn, drop, err := freshDatabase(ctx, o.postgres, name)
	if err != nil {
		return err
	}
	parent, err := os.MkdirTemp(o.dataDir, "brownout-load-")
	if err != nil {
		drop()
		return err
	}
	tok := randomToken()
	var procs []*controllerProc
	t.cleanup = func() {
		for _, p := range procs {
			p.stop()
		}
		drop()
		os.RemoveAll(parent)
	}
	for i := range o.replicas {
		args := append([]string{"--data", dsn, "--replica-id", fmt.Sprintf("r%d", i+1), "--max-conns-per-token", "100000", "--max-conns", "0",
			"--max-conns-per-addr", "0", "--max-subscribers", "0", "--max-subscribers-per-addr", "0", "--log-level", "warn"}, o.debugArgs(i)...)
		args = append(args, o.extra...)
		p, err := startController(ctx, o.bin, filepath.Join(parent, fmt.Sprintf("r%d", i+1)), tok, args)
		if err != nil {
			t.cleanup()
			return err
		}
		procs = append(procs, p)
		t.urls = append(t.urls, p.url())
		t.pids = append(t.pids, p.pid())
		t.procs = procs
	}
	leader := ""
	for deadline := time.Now().Add(10 * time.Second); leader == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var rs struct {
			Items []struct {
				ID     string `json:"id"`
				Leader bool   `json:"leader"`
			} `json:"items"`
		}
		if _, err := newAPI(t.urls[0], tok).do(ctx, http.MethodGet, "/api/v1/replicas", nil, &rs); err == nil {
			for _, r := range rs.Items {
				if r.Leader {
					leader = r.ID
				}
			}
		}
	}
	if leader == "" {
		t.cleanup()
		return errors.New("no replica leads within 10 s")
	}
	for i := range procs {
		if id := fmt.Sprintf("r%d", i+1); (id == leader) == (o.changeOn == "leader") {
			t.from = i
			break
		}
	}
	t.url, t.token, t.pid, t.proc = t.urls[t.from], tok, procs[t.from].pid(), procs[t.from]
	return nil
}

// awaitEverywhere waits until every replica knows every service.
func (t *target) awaitEverywhere(ctx context.Context) error {
	deadline := time.Now().Add(15 * time.Second)
	for _, u := range t.urls {
		a := newAPI(u, t.token)
		for _, s := range t.services {
			for {
				if _, err := a.serviceVersion(ctx, s); err == nil {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("replica %s does not know service %s after 15 s", u, s)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	// Tokens created on one replica reach the others through the feed.
	time.Sleep(300 * time.Millisecond)
	return nil
}

// wsBases are every replica's websocket base URLs.
func (t *target) wsBases() []string {
	out := make([]string, len(t.urls))
	for i, u := range t.urls {
		out[i] = "ws" + strings.TrimPrefix(u, "http")
	}
	return out
}

// freshDatabase creates an empty database on the server and returns its
// DSN and a function that drops it.
func freshDatabase(ctx context.Context, server, name string) (string, func(), error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, errors.New("--postgres: want a postgres:// URL")
	}
	if err := checkLoopbackAddr(u.Host); err != nil {
		return "", nil, fmt.Errorf("--postgres: %w", err)
	}
	db := "brownout_load_" + strings.NewReplacer("-", "_").Replace(name) + "_" + randomToken()[8:16]
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %w", u.Host, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+db+" TEMPLATE template0"); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	drop := func() {
		c, err := pgx.Connect(context.Background(), server)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
	}
	d := *u
	d.Path = "/" + db
	return d.String(), drop, nil
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

// allMetrics is every replica's /metrics summed series by series.
func (t *target) allMetrics(ctx context.Context) (map[string]float64, error) {
	out := map[string]float64{}
	for _, u := range t.urls {
		m, err := newAPI(u, t.token).metrics(ctx)
		if err != nil {
			return nil, err
		}
		for k, v := range m {
			out[k] += v
		}
	}
	return out, nil
}

// rss is every replica's RSS summed.
func (t *target) rss() int64 {
	var n int64
	for _, pid := range t.pids {
		v, _ := rssKiB(pid)
		n += v
	}
	return n
}

// serviceVersions is every replica's version of every service, as its API
// answers.
func (t *target) serviceVersions(ctx context.Context) string {
	var b strings.Builder
	for i, u := range t.urls {
		a := newAPI(u, t.token)
		fmt.Fprintf(&b, "replica %d:", i)
		for _, s := range t.services {
			v, err := a.serviceVersion(ctx, s)
			if err != nil {
				fmt.Fprintf(&b, " %s (%v)", s, err)
				continue
			}
			fmt.Fprintf(&b, " %s v%d", s, v)
		}
		b.WriteString("; ")
	}
	return b.String()
}
