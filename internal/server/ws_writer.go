package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/brownout-io/brownout/internal/hub"
)

// connWriter writes to one subscriber's connection from a goroutine that
// exists only while there is something to write: a new snapshot, a ping
// that is due, or the close the controller asked for. An idle subscriber
// thus costs one goroutine (its reader), not two; at ten thousand
// subscribers that is tens of megabytes of stacks saved.
type connWriter struct {
	s      *Server
	ctx    context.Context
	cancel context.CancelFunc
	c      *websocket.Conn
	sub    *hub.Subscriber

	// deadline closes the connection when a write or ping outlasts
	// WriteTimeout; one timer serves every write. Writes take no context:
	// a cancellable one costs the websocket library a callback registered
	// and removed on every frame, and closing the connection ends a write
	// as surely.
	deadline *time.Timer
	ping     *time.Timer
	pingDue  atomic.Bool

	mu      sync.Mutex
	running bool
	stopped bool
	wg      sync.WaitGroup
}

func newConnWriter(s *Server, ctx context.Context, cancel context.CancelFunc, c *websocket.Conn, sub *hub.Subscriber) *connWriter {
	w := &connWriter{s: s, ctx: ctx, cancel: cancel, c: c, sub: sub}
	w.deadline = time.AfterFunc(time.Hour, func() { w.c.CloseNow() })
	w.deadline.Stop()
	w.ping = time.AfterFunc(s.cfg.PingInterval, func() {
		w.pingDue.Store(true)
		w.kick()
	})
	sub.OnReady(w.kick)
	w.kick() // the first snapshot was offered before OnReady
	return w
}

// kick starts the writing goroutine unless it runs already. It never
// blocks: the publisher calls it under the service's lock.
func (w *connWriter) kick() {
	w.mu.Lock()
	if w.running || w.stopped {
		w.mu.Unlock()
		return
	}
	w.running = true
	w.wg.Add(1)
	w.mu.Unlock()
	go w.drain()
}

// work reports whether there is anything to do.
func (w *connWriter) work() bool {
	select {
	case <-w.sub.Done():
		return true
	default:
	}
	return w.sub.Pending() || w.pingDue.Load()
}

func (w *connWriter) drain() {
	defer w.wg.Done()
	for {
		if w.ctx.Err() != nil {
			w.idle()
			return
		}
		select {
		case <-w.sub.Done():
			_ = w.c.Close(websocket.StatusCode(w.sub.CloseCode()), w.sub.CloseReason())
			w.cancel()
			w.idle()
			return
		default:
		}
		if m := w.sub.Take(); m != nil {
			if !w.timed(func(ctx context.Context) error { return w.c.Write(ctx, websocket.MessageText, m.Data) }) {
				return
			}
			continue
		}
		if w.pingDue.Swap(false) {
			if !w.timed(w.c.Ping) {
				return
			}
			w.ping.Reset(w.s.cfg.PingInterval)
			continue
		}
		// Nothing left. Going idle is decided under mu, and kick takes mu
		// after a message is made pending, so no wake-up is lost.
		w.mu.Lock()
		if w.work() && !w.stopped {
			w.mu.Unlock()
			continue
		}
		w.running = false
		w.mu.Unlock()
		return
	}
}

// timed runs a write or ping under WriteTimeout; on failure it drops the
// peer, ends the connection and reports false.
func (w *connWriter) timed(op func(context.Context) error) bool {
	w.deadline.Reset(w.s.cfg.WriteTimeout)
	err := op(context.Background())
	if !w.deadline.Stop() || err != nil {
		w.cancel()
		w.c.CloseNow()
		w.idle()
		return false
	}
	return true
}

func (w *connWriter) idle() {
	w.mu.Lock()
	w.running = false
	w.mu.Unlock()
}

// stop ends the connection, waits for a running write to give up and lets
// no new one start. The reader has ended: nothing more can arrive, so
// nothing is lost by closing first.
func (w *connWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	w.ping.Stop()
	w.c.CloseNow()
	w.wg.Wait()
	w.deadline.Stop()
}
