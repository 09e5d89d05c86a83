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

	"nhooyr.io/websocket"
)

// The baseline broadcaster is the floor the controller is compared with: a
// websocket server that does nothing but send one small frame to every
// connection on each POST /broadcast. It has the same shape as the
// controller's hub (one writer goroutine per connection woken by a
// one-slot channel, latest message wins; the handler goroutine reads and
// discards what the client sends), and none of its work: no
// authentication, storage, JSON encoding per change, or bookkeeping of
// acks.
type broadcaster struct {
	version atomic.Uint64
	mu      sync.Mutex
	conns   map[*bconn]struct{}
}

type bconn struct {
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
	bc := &bconn{ready: make(chan struct{}, 1)}
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
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopbackAddr(*addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	b := &broadcaster{conns: map[*bconn]struct{}{}}
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
