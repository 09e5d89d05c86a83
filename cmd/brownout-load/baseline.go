package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// The baseline broadcaster is the floor the controller is compared with: a
// websocket server that does nothing but send one small frame to every
// connection on each POST /broadcast, and read and discard what clients
// send. In "direct" mode (the default floor) the broadcast writes to each
// connection in turn; in "goroutine" mode it has the controller's shape
// (one writer goroutine per connection woken by a one-slot channel, latest
// message wins). Neither does any of the controller's work: no
// authentication, storage, JSON, or bookkeeping of acks.
type broadcaster struct {
	// direct: the broadcast writes to every connection itself, one after
	// the other, instead of waking a writer goroutine per connection.
	direct  bool
	version atomic.Uint64
	mu      sync.Mutex
	conns   map[*bconn]struct{}
}

type bconn struct {
	c       *websocket.Conn
	pending atomic.Pointer[[]byte]
	ready   chan struct{}
}

func (b *broadcaster) frame() []byte {
	return []byte(`{"type":"state","version":` + strconv.FormatUint(b.version.Load(), 10) + `}`)
}

func (b *broadcaster) subscribe(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:    []string{subprotocol},
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	bc := &bconn{c: c, ready: make(chan struct{}, 1)}
	b.mu.Lock()
	first := b.frame()
	bc.pending.Store(&first)
	bc.ready <- struct{}{}
	b.conns[bc] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.conns, bc)
		b.mu.Unlock()
	}()
	go func() {
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case <-bc.ready:
				if m := bc.pending.Swap(nil); m != nil {
					if err := c.Write(ctx, websocket.MessageText, *m); err != nil {
						return
					}
				}
			}
		}
	}()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			c.CloseNow()
			return
		}
	}
}

func (b *broadcaster) broadcast(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if b.direct {
		b.mu.Lock()
		b.version.Add(1)
		m := b.frame()
		conns := make([]*bconn, 0, len(b.conns))
		for bc := range b.conns {
			conns = append(conns, bc)
		}
		b.mu.Unlock()
		for _, bc := range conns {
			_ = bc.c.Write(r.Context(), websocket.MessageText, m)
		}
		fmt.Fprintf(w, "%d\n", len(conns))
		return
	}
	b.mu.Lock()
	b.version.Add(1)
	m := b.frame()
	for bc := range b.conns {
		bc.pending.Store(&m)
		select {
		case bc.ready <- struct{}{}:
		default:
		}
	}
	n := len(b.conns)
	b.mu.Unlock()
	fmt.Fprintf(w, "%d\n", n)
}

// baselineServerCmd runs the broadcaster until SIGINT/SIGTERM or until its
// stdin closes (the parent load tool went away).
func baselineServerCmd(args []string) error {
	fs := flag.NewFlagSet("baseline-server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	mode := fs.String("mode", "goroutine", `"direct": the broadcast writes to each connection in turn; "goroutine": it wakes a writer goroutine per connection, as the controller does`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopbackAddr(*addr); err != nil {
		return err
	}
	if *mode != "direct" && *mode != "goroutine" {
		return fmt.Errorf("--mode %q: want direct or goroutine", *mode)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	b := &broadcaster{conns: map[*bconn]struct{}{}, direct: *mode == "direct"}
	b.version.Store(1) // clients treat version 0 as "nothing yet"
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/subscribe", b.subscribe)
	mux.HandleFunc("/broadcast", b.broadcast)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening %s pid %d\n", ln.Addr(), os.Getpid())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	go func() { _ = srv.Serve(ln) }()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}
