package pgtest

import (
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy is a TCP proxy to the test server that a test can break, to play
// database loss without touching the server others share.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  string // "", "cut", "blackhole"
	conns map[net.Conn]struct{}
}

// Cut closes every connection through the proxy and refuses new ones (a
// database that went away).
func (p *Proxy) Cut() { p.set("cut") }

// Blackhole keeps every socket open and accepts new ones but passes
// nothing (a network that stops answering).
func (p *Proxy) Blackhole() { p.set("blackhole") }

// Restore heals the proxy. Connections open during a blackhole are closed
// (what it swallowed cannot be replayed).
func (p *Proxy) Restore() {
	p.mu.Lock()
	was := p.mode
	p.mode = ""
	p.mu.Unlock()
	if was == "blackhole" {
		p.closeAll()
	}
}

// NewProxy starts a proxy to the server of dsn (a postgres:// URL) and
// returns it with dsn rewritten to go through it (and to give up a dial
// after a second, so that a blackholed connect fails fast). It stops when
// the test ends.
func NewProxy(tb testing.TB, dsn string) (*Proxy, string) {
	tb.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		tb.Fatalf("a proxy needs a postgres:// URL, not %q", redact(dsn))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{ln: ln, target: u.Host, conns: map[net.Conn]struct{}{}}
	tb.Cleanup(func() { ln.Close(); p.closeAll() })
	go p.serve()
	u.Host = ln.Addr().String()
	q := u.Query()
	q.Set("connect_timeout", "1")
	u.RawQuery = q.Encode()
	return p, u.String()
}

func (p *Proxy) serve() {
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
			p.track(c) // accepted, never answered
			continue
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
func (p *Proxy) pipe(dst, src net.Conn) {
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

func (p *Proxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns[c] = struct{}{}
	p.mu.Unlock()
}

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *Proxy) set(mode string) {
	p.mu.Lock()
	p.mode = mode
	p.mu.Unlock()
	if mode == "cut" {
		p.closeAll()
	}
}
