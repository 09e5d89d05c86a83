package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/coder/websocket"
)

// centrifugeServer runs a centrifuge node whose every connection is
// subscribed server-side to one channel, and publishes the body of each
// POST /publish to it. It counts the messages clients send (the acks of
// centrifuge-ack) and serves the count at GET /acks.
func centrifugeServer(args []string) error {
	fs := flag.NewFlagSet("centrifuge-server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	node, err := centrifuge.New(centrifuge.Config{LogLevel: centrifuge.LogLevelError})
	if err != nil {
		return err
	}
	node.OnConnecting(func(ctx context.Context, e centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		return centrifuge.ConnectReply{
			Credentials:   &centrifuge.Credentials{UserID: ""},
			Subscriptions: map[string]centrifuge.SubscribeOptions{channel: {}},
		}, nil
	})
	var acks atomic.Int64
	node.OnConnect(func(cl *centrifuge.Client) {
		cl.OnMessage(func(centrifuge.MessageEvent) { acks.Add(1) })
	})
	if err := node.Run(); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/connection/websocket", centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{
		CheckOrigin: func(*http.Request) bool { return true },
	}))
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if _, err := node.Publish(channel, body); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /acks", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, acks.Load())
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	if d := os.Getenv("PEERS_DEBUG_ADDR"); d != "" {
		// --cpu-profile: pprof on a loopback address of the tool's choice.
		dmux := http.NewServeMux()
		dmux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		go func() { _ = http.ListenAndServe(d, dmux) }()
	}
	fmt.Printf("listening %s pid %d\n", ln.Addr(), os.Getpid())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); stop() }()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return node.Shutdown(sctx)
}

const channel = "flags"

// cfClient is one websocket client speaking centrifuge's JSON protocol.
type cfClient struct {
	conn   *websocket.Conn
	change atomic.Int64 // last change number received
	at     atomic.Int64 // when it arrived (unix ns)
}

// cfFleet is N centrifuge clients. With ack, each client answers every
// publication with a message of its own, as a Brownout SDK acknowledges
// every state: the server reads N frames per change as Brownout's does.
type cfFleet struct {
	base    string
	ack     bool
	clients []*cfClient
	wg      sync.WaitGroup
	cancel  context.CancelFunc
}

func (f *cfFleet) connect(ctx context.Context, n, par int) error {
	ctx, f.cancel = context.WithCancel(ctx)
	f.clients = make([]*cfClient, n)
	sem := make(chan struct{}, par)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := f.dial(ctx)
			if err != nil {
				errs <- err
				return
			}
			f.clients[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return fmt.Errorf("centrifuge client: %w", err)
	}
	return nil
}

func (f *cfFleet) dial(ctx context.Context) (*cfClient, error) {
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, "ws"+f.base[len("http"):]+"/connection/websocket", nil)
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(1 << 20)
	if err := conn.Write(dctx, websocket.MessageText, []byte(`{"id":1,"connect":{}}`)); err != nil {
		return nil, err
	}
	// The connect reply confirms the server-side subscription.
	if _, data, err := conn.Read(dctx); err != nil || !bytes.Contains(data, []byte(`"connect"`)) {
		return nil, fmt.Errorf("connect reply %q: %v", data, err)
	}
	c := &cfClient{conn: conn}
	f.wg.Add(1)
	go func() { defer f.wg.Done(); c.read(f.ack) }()
	return c, nil
}

// read handles frames until the connection is closed. Like the SDK's, its
// reads and writes take no cancellable context (the websocket library
// registers a callback per frame for one); close ends them.
func (c *cfClient) read(ack bool) {
	ctx := context.Background()
	var reply []byte
	for {
		_, data, err := c.conn.Read(ctx)
		if err != nil {
			return
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			line = bytes.TrimSpace(line)
			switch {
			case len(line) == 0:
			case bytes.Equal(line, []byte("{}")): // ping: answer pong
				_ = c.conn.Write(ctx, websocket.MessageText, []byte("{}"))
			default:
				var m struct {
					Push *struct {
						Pub *struct {
							Data json.RawMessage `json:"data"`
						} `json:"pub"`
					} `json:"push"`
				}
				if json.Unmarshal(line, &m) != nil || m.Push == nil || m.Push.Pub == nil {
					continue
				}
				var d struct {
					Change int64 `json:"change"`
				}
				if json.Unmarshal(m.Push.Pub.Data, &d) == nil {
					c.at.Store(time.Now().UnixNano())
					c.change.Store(d.Change)
					if ack {
						reply = strconv.AppendInt(append(reply[:0], `{"send":{"data":{"ack":`...), d.Change, 10)
						reply = append(reply, "}}}"...)
						if c.conn.Write(ctx, websocket.MessageText, reply) != nil {
							return
						}
					}
				}
			}
		}
	}
}

// publish sends change k and waits for every client to have it; it returns
// the time to the last one.
func (f *cfFleet) publish(ctx context.Context, base string, k int64, payload map[string]any) (time.Duration, error) {
	payload["change"] = k
	body, _ := json.Marshal(payload)
	t0 := time.Now()
	resp, err := http.Post(base+"/publish", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return 0, fmt.Errorf("publish: %d", resp.StatusCode)
	}
	return waitAll(ctx, t0, len(f.clients), func(i int) (bool, int64) {
		c := f.clients[i]
		return c.change.Load() >= k, c.at.Load()
	})
}

// checkAcks fails unless the server read at least want acks.
func (f *cfFleet) checkAcks(ctx context.Context, want int64) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.base+"/acks", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
		resp.Body.Close()
		got, err := strconv.ParseInt(string(bytes.TrimSpace(body)), 10, 64)
		if err != nil {
			return fmt.Errorf("acks: %q", body)
		}
		if got >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server read %d acks, want at least %d", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *cfFleet) close() {
	for _, c := range f.clients {
		if c != nil {
			_ = c.conn.CloseNow()
		}
	}
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
}

// waitAll polls until have(i) holds for every client and returns the
// latest arrival time after t0.
func waitAll(ctx context.Context, t0 time.Time, n int, have func(int) (bool, int64)) (time.Duration, error) {
	deadline := time.Now().Add(60 * time.Second)
	next := 0
	for {
		for next < n {
			if ok, _ := have(next); !ok {
				break
			}
			next++
		}
		if next == n {
			var last int64
			for i := range n {
				_, at := have(i)
				last = max(last, at)
			}
			return time.Duration(last - t0.UnixNano()), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%d of %d clients still without the change after 60s", n-next, n)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
