package postgres

import (
	"context"
	"errors"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
	"github.com/brownout-io/brownout/internal/storage/postgres/pgtest"
)

// proxy is a TCP proxy to the test server that a test can break: "cut"
// closes every connection and refuses new ones; "blackhole" keeps every
// socket open and accepts new ones but passes nothing (a network that
// stops answering); "" heals it.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  string // "", "cut", "blackhole"
	conns map[net.Conn]struct{}
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.closeAll() })
	go p.serve()
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		p.mu.Unlock()
		switch mode {
		case "cut":
			c.Close()
			continue
		case "blackhole":
			p.track(c)
			continue // accepted, never answered
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.track(c)
		p.track(up)
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

// pipe copies src to dst, dropping what passes while the proxy is a
// blackhole: the sockets stay open, nothing arrives.
func (p *proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			drop := p.mode == "blackhole"
			p.mu.Unlock()
			if !drop {
				if _, err := dst.Write(buf[:n]); err != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns[c] = struct{}{}
	p.mu.Unlock()
}

func (p *proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *proxy) set(mode string) {
	p.mu.Lock()
	p.mode = mode
	p.mu.Unlock()
	if mode == "cut" {
		p.closeAll()
	}
}

// throughProxy returns dsn with its host replaced by the proxy's.
func throughProxy(t *testing.T, dsn string) (*proxy, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Skip("BROWNOUT_TEST_POSTGRES is not a URL; the loss test needs one")
	}
	p := newProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	q := u.Query()
	q.Set("connect_timeout", "1") // a blackholed dial gives up quickly
	u.RawQuery = q.Encode()
	return p, u.String()
}

// When the database is lost (connections cut, or a network that stops
// answering), writes fail with ErrUnavailable — a 503, in bounded time —
// the change feed reports itself down, nothing half-written remains, and
// everything recovers on its own when the database is back.
func TestDatabaseLoss(t *testing.T) {
	t.Parallel()
	p, dsn := throughProxy(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	db := mustOpenOpts(t, dsn, Options{Replica: "a", WriteTimeout: 2 * time.Second})
	f := listen(t, db)
	f.next(t, brownout.ChangeResync)
	if err := db.SaveServiceStates(ctx, []brownout.StateChange{state("checkout", 1)}); err != nil {
		t.Fatal(err)
	}
	f.next(t, brownout.ChangeState)

	for _, mode := range []string{"cut", "blackhole"} {
		p.set(mode)
		start := time.Now()
		err := db.SaveServiceStates(ctx, []brownout.StateChange{state("checkout", 3)})
		if !errors.Is(err, storage.ErrUnavailable) || brownout.ErrorCode(err) != brownout.EUNAVAILABLE {
			t.Fatalf("%s: write: %v, want ErrUnavailable", mode, err)
		}
		if d := time.Since(start); d > 4*time.Second { // WriteTimeout is 2 s
			t.Fatalf("%s: the write took %s to fail", mode, d)
		}
		t.Logf("%s: write failed after %s", mode, time.Since(start))
		f.next(t, brownout.ChangeLost)
		t.Logf("%s: lost after %s", mode, time.Since(start))
		if err := db.Ready(ctx); !errors.Is(err, storage.ErrUnavailable) {
			t.Fatalf("%s: ready: %v, want ErrUnavailable", mode, err)
		}
		p.set("")
		if mode == "blackhole" {
			p.closeAll() // what the blackhole swallowed cannot be replayed
		}
		f.next(t, brownout.ChangeResync)
		t.Logf("%s: resync after %s", mode, time.Since(start))
		deadline := time.Now().Add(15 * time.Second)
		for {
			err := db.SaveServiceStates(ctx, []brownout.StateChange{state("checkout", 2)})
			if err == nil {
				break
			}
			if !errors.Is(err, storage.ErrUnavailable) || time.Now().After(deadline) {
				t.Fatalf("%s: after the database came back: %v", mode, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("%s: write ok after %s", mode, time.Since(start))
		if err := db.Ready(ctx); err != nil {
			t.Fatalf("%s: ready after recovery: %v", mode, err)
		}
	}
	// The failed writes left nothing: level 2 twice, never 3.
	st, err := db.LoadService(ctx, "checkout")
	if err != nil || st.Level != 2 || st.Version != 3 {
		t.Fatalf("after two losses: %+v, %v; want level 2 at version 3", st, err)
	}
}
