package sdk

import (
	"github.com/brownout-io/brownout/sdk/wire"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// runTransport connects, serves a connection until it drops, waits, and
// connects again, until the client closes or a final error.
func (c *Client) runTransport() {
	defer c.wg.Done()
	bo := newBackoff(c.cfg.backoff, newRand(c.cfg.seed))
	failures := 0 // attempts failed in a row, to log an outage once
	for c.ctx.Err() == nil {
		start := c.cfg.clock.Now()
		established, retryAfter, err := c.session()
		if c.ctx.Err() != nil {
			return
		}
		if established && c.cfg.clock.Now().Sub(start) >= c.cfg.backoff.stable {
			bo.reset()
		}
		if established {
			failures = 0 // the session logged its end
		} else {
			failures++
		}
		c.mu.Lock()
		c.lastErr = err
		if isFinal(err) {
			c.finalErr = err
		}
		c.mu.Unlock()
		if isFinal(err) {
			c.log.Error("brownout: controller refused this client; not reconnecting", slog.Any(logKeyError, err))
			if c.cfg.onError != nil {
				c.cfg.onError(err)
			}
			return
		}
		wait := max(bo.next(), retryAfter)
		level := slog.LevelDebug
		if failures == 1 {
			level = slog.LevelWarn
		}
		c.log.Log(c.ctx, level, "brownout: cannot reach controller; serving last state, retrying",
			slog.Any(logKeyError, err), slog.Duration(logKeyWait, wait))
		t := time.NewTimer(wait)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// session dials once and serves the connection until it ends. established
// reports whether the upgrade succeeded; retryAfter is the controller's
// Retry-After on a refused upgrade.
func (c *Client) session() (established bool, retryAfter time.Duration, err error) {
	conn, raw, retryAfter, err := c.dial()
	if err != nil {
		return false, retryAfter, err
	}
	c.connections.Add(1)
	conn.SetReadLimit(wire.MaxServerFrame)

	// Writes take no context (a cancellable one costs the websocket
	// library a callback per frame): ending the connection is cancelling
	// ctx with the reason, which ends a read, and closing the socket,
	// which ends a write.
	ctx, cancelCause := context.WithCancelCause(context.Background())
	end := func(cause error) {
		cancelCause(cause)
		conn.CloseNow()
	}
	cancel := func() { cancelCause(nil) }
	defer cancel()
	// Liveness: any frame or pong pushes the deadline back; missing it
	// drops the connection.
	watchdog := time.AfterFunc(c.cfg.deadAfter, func() {
		end(fmt.Errorf("no frame or pong from the controller for %s", c.cfg.deadAfter))
	})
	defer watchdog.Stop()
	alive := func() { watchdog.Reset(c.cfg.deadAfter) }

	s := &conn_{c: c, conn: conn, end: end, readCtx: context.Background()}
	if raw == nil {
		// Without the socket in hand only a cancellable read can be ended
		// while the close handshake holds the connection.
		s.readCtx = ctx
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); s.writeLoop(ctx) }()
	go func() { defer wg.Done(); s.pingLoop(ctx, alive) }()
	readErr := make(chan error, 1)
	go func() { defer wg.Done(); readErr <- s.readLoop(ctx, alive) }()

	select {
	case err = <-readErr:
	case <-c.ctx.Done():
		// Say goodbye properly so that the controller can tell a shutdown
		// from a failure, but never wait long for the peer.
		wg.Add(1)
		go func() { defer wg.Done(); conn.Close(websocket.StatusNormalClosure, "client closing") }()
		t := time.NewTimer(closeGrace)
		select {
		case <-readErr:
		case <-t.C:
		}
		t.Stop()
		err = ErrClosed
	}
	cancel()
	if raw != nil {
		// A close handshake still waiting for a silent controller holds
		// the connection (CloseNow waits for it, up to seconds); closing
		// the socket ends it, and the read, at once.
		raw.Close()
	}
	conn.CloseNow()
	wg.Wait()

	c.mu.Lock()
	wasConnected := c.connected
	c.connected = false
	c.unreachableSince = c.cfg.clock.Now()
	c.recomputeLocked()
	c.mu.Unlock()
	if wasConnected && !errors.Is(err, ErrClosed) {
		c.log.Warn("brownout: disconnected from controller", slog.Any(logKeyError, err))
	}
	return true, 0, err
}

// dial upgrades a connection. raw is the socket under it, when the HTTP
// client's transport reports it (net/http's does), so that the session
// can end reads without a cancellable context.
func (c *Client) dial() (conn *websocket.Conn, raw net.Conn, retryAfter time.Duration, err error) {
	u := c.subscribeURL
	c.mu.Lock()
	if c.applied > 0 {
		u += "&version=" + strconv.FormatUint(c.applied, 10)
		if c.epoch != "" {
			u += "&epoch=" + url.QueryEscape(c.epoch)
		}
	}
	c.mu.Unlock()
	h := http.Header{}
	if c.cfg.token != "" {
		h.Set("Authorization", "Bearer "+c.cfg.token)
	}
	h.Set("User-Agent", userAgent)
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.dialTimeout)
	defer cancel()
	var mu sync.Mutex
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		mu.Lock()
		raw = i.Conn
		mu.Unlock()
	}})
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient:   c.httpClient,
		HTTPHeader:   h,
		Subprotocols: []string{wire.Subprotocol},
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			var body []byte
			if resp.Body != nil {
				body, _ = io.ReadAll(io.LimitReader(resp.Body, 512))
			}
			return nil, nil, parseRetryAfter(resp.Header.Get("Retry-After")), &StatusError{StatusCode: resp.StatusCode, Body: errorMessage(body)}
		}
		return nil, nil, 0, err
	}
	mu.Lock()
	defer mu.Unlock()
	return conn, raw, 0, nil
}

const userAgent = "brownout-go-sdk/1"

// closeGrace bounds the close handshake when the client closes.
const closeGrace = 500 * time.Millisecond

// errorMessage extracts the message of a controller error body, or returns
// the body itself.
func errorMessage(body []byte) string {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		return e.Error.Message
	}
	return string(body)
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return min(time.Duration(n)*time.Second, 5*time.Minute)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), 5*time.Minute)
	}
	return 0
}

// conn_ is one live connection's shared state.
type conn_ struct {
	c    *Client
	conn *websocket.Conn
	// ackBuf holds the ack frame being written; only the reader uses it.
	ackBuf []byte
	// end cancels the session's context with its cause and closes the
	// socket, which ends a blocked read or write.
	end func(cause error)
	// readCtx bounds reads: the background context when the session can
	// close the socket itself (a cancellable one costs the websocket
	// library a callback registered and removed per frame), else the
	// session's.
	readCtx context.Context
}

// readLoop applies the frames the controller sends until the connection
// ends and returns why it ended.
func (s *conn_) readLoop(ctx context.Context, alive func()) error {
	c := s.c
	// The reader writes its acks itself, at once: handing them to the
	// writer cost a goroutine wake-up per state, about an eighth of what a
	// state costs the client. A stuck write ends the connection, which
	// ends the read too; a report being written delays an ack by one
	// frame at most.
	w := s.newTimedWriter(ctx)
	defer w.stop()
	var buf []byte
	for {
		// Whoever cancels ctx closes the socket too, which ends a read
		// that does not take ctx (see readCtx). Frames are read into one
		// buffer, reused: what a frame decodes to is copied out of it.
		typ, data, err := readMessage(s.readCtx, s.conn, buf[:0])
		buf = data
		if cap(buf) > maxKeptBuffer {
			buf = nil
		}
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && cause != context.Canceled && websocket.CloseStatus(err) == -1 {
				return cause
			}
			return readError(err)
		}
		alive()
		if typ != websocket.MessageText {
			continue
		}
		f, err := wire.DecodeFrame(data)
		if err != nil {
			c.log.Warn("brownout: ignoring malformed frame", slog.Any(logKeyError, err))
			continue
		}
		switch f.Type {
		case wire.TypeState:
			if v, ok := c.applyState(&f); ok {
				if err := s.writeAck(ctx, w, v); err != nil {
					return err
				}
			}
		case wire.TypeUnchanged:
			if v, ok := c.confirm(&f); ok {
				if err := s.writeAck(ctx, w, v); err != nil {
					return err
				}
			}
		case wire.TypeError:
			c.log.Warn("brownout: controller refused a frame",
				slog.String(logKeyCode, f.Code), slog.String("message", f.Message))
		default:
			// Unknown types are ignored so that the controller can add some.
		}
	}
}

// maxKeptBuffer is the largest read buffer a connection keeps between
// frames; a larger frame's buffer is dropped once it is decoded.
const maxKeptBuffer = 16 << 10

// readMessage reads the next message into buf, which it grows as needed,
// instead of a fresh slice per message as websocket.Conn.Read does.
func readMessage(ctx context.Context, conn *websocket.Conn, buf []byte) (websocket.MessageType, []byte, error) {
	typ, r, err := conn.Reader(ctx)
	if err != nil {
		return 0, buf, err
	}
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(512, cap(buf)))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return typ, buf, nil
		}
		if err != nil {
			return 0, buf, err
		}
	}
}

// readError turns a read failure into the error the transport acts on.
func readError(err error) error {
	if code := websocket.CloseStatus(err); code != -1 {
		var ce websocket.CloseError
		errors.As(err, &ce)
		return &CloseError{Code: int(code), Reason: ce.Reason}
	}
	return err
}

// timedWriter writes frames, each bounded by writeTimeout: one timer per
// writing goroutine ends the connection when a write outlasts it, which
// ends the write. Writes take no cancellable context (see readCtx).
type timedWriter struct {
	s       *conn_
	ctx     context.Context
	timeout *time.Timer
}

func (s *conn_) newTimedWriter(ctx context.Context) *timedWriter {
	t := time.AfterFunc(time.Hour, func() {
		s.end(fmt.Errorf("a write to the controller took longer than %s", s.c.cfg.writeTimeout))
	})
	t.Stop()
	return &timedWriter{s: s, ctx: ctx, timeout: t}
}

func (w *timedWriter) stop() { w.timeout.Stop() }

// write sends data; a write the timer ended reports the session's cause.
func (w *timedWriter) write(data []byte) error {
	w.timeout.Reset(w.s.c.cfg.writeTimeout)
	err := w.s.conn.Write(context.Background(), websocket.MessageText, data)
	if !w.timeout.Stop() && err == nil {
		err = context.Cause(w.ctx)
	}
	return err
}

// writeAck acknowledges version v; a failed write ends the connection.
func (s *conn_) writeAck(ctx context.Context, w *timedWriter, v uint64) error {
	s.ackBuf = wire.AppendAck(s.ackBuf[:0], v)
	if err := w.write(s.ackBuf); err != nil {
		s.end(err)
		if cause := context.Cause(ctx); cause != nil && cause != context.Canceled {
			return cause
		}
		return err
	}
	s.c.acked.Store(v)
	return nil
}

// writeLoop sends buffered reports; the reader writes acks itself.
func (s *conn_) writeLoop(ctx context.Context) {
	c := s.c
	w := s.newTimedWriter(ctx)
	defer w.stop()
	for {
		if r, ok := c.ring.peek(); ok {
			data, err := json.Marshal(wire.ReportFrame{Type: wire.TypeReport, Report: r})
			if err == nil {
				err = w.write(data)
			}
			if err != nil {
				s.end(err)
				return
			}
			c.ring.pop()
			c.reportsSent.Add(1)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-c.reportReady:
		}
	}
}

// pingLoop pings the controller so that a silent connection is noticed:
// pongs are answered inside Read and never reach the reader, so the pong of
// our own ping is the only sign of life between states.
func (s *conn_) pingLoop(ctx context.Context, alive func()) {
	t := time.NewTicker(s.c.cfg.pingEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, s.c.cfg.pingEvery)
		err := s.conn.Ping(pctx)
		cancel()
		if err == nil {
			alive()
		}
	}
}

// applyState applies a state frame if it is newer than the one applied and
// returns the version to acknowledge.
func (c *Client) applyState(f *wire.Frame) (uint64, bool) {
	if f.Service != c.service {
		c.log.Warn("brownout: ignoring state for another service", slog.String("got", f.Service))
		return 0, false
	}
	if !f.Level.Valid() {
		c.log.Warn("brownout: ignoring state with invalid level", slog.Int(logKeyLevel, int(f.Level)))
		return 0, false
	}
	if f.Flags == nil {
		f.Flags = map[string]bool{}
	}
	c.mu.Lock()
	// Another epoch means the controller's history was reset (a new data
	// directory): its versions start over, so a lower one is not stale.
	reset := f.Epoch != "" && c.epoch != "" && f.Epoch != c.epoch
	if reset {
		c.log.Info("brownout: controller history was reset; taking its state",
			slog.String("epoch", f.Epoch), slog.Uint64(logKeyVersion, f.Version), slog.Uint64("applied", c.applied))
	}
	if !reset && f.Version <= c.applied && c.base.Source != SourceDefaults {
		defer c.mu.Unlock()
		if f.Version == c.applied {
			return c.confirmLocked()
		}
		c.log.Warn("brownout: ignoring state older than the one applied",
			slog.Uint64(logKeyVersion, f.Version), slog.Uint64("applied", c.applied))
		return 0, false
	}
	old := c.base.Level
	c.base = stateFromFrame(f, SourceController)
	c.applied = f.Version
	c.epoch = f.Epoch
	c.learned[c.base.Level] = f.Flags
	c.connected = true
	c.unreachableSince = time.Time{}
	c.recomputeLocked()
	var rem *remembered
	if c.cfg.stateFile != "" {
		rem = &remembered{SavedAt: c.cfg.clock.Now(), State: *f, LevelFlags: maps.Clone(c.learned)}
	}
	c.mu.Unlock()

	c.statesApplied.Add(1)
	if old != c.base.Level {
		c.log.Info("brownout: level changed", slog.String(logKeyLevel, Level(f.Level).String()),
			slog.String("cause", f.Cause), slog.Uint64(logKeyVersion, f.Version))
	}
	if rem != nil {
		if err := saveState(c.cfg.stateFile, rem); err != nil {
			c.log.Warn("brownout: cannot persist state", slog.Any(logKeyError, err))
		}
	}
	return f.Version, true
}

// confirm handles "unchanged": the controller's version is the one applied.
func (c *Client) confirm(f *wire.Frame) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.Version != c.applied || c.applied == 0 {
		c.log.Warn("brownout: unexpected unchanged frame",
			slog.Uint64(logKeyVersion, f.Version), slog.Uint64("applied", c.applied))
		return 0, false
	}
	return c.confirmLocked()
}

// confirmLocked records that the controller confirmed the applied state.
func (c *Client) confirmLocked() (uint64, bool) {
	c.connected = true
	c.unreachableSince = time.Time{}
	if c.base.Source == SourceFile {
		// The persisted state is current: it is now the controller's.
		c.base.Source = SourceController
	}
	c.recomputeLocked()
	return c.applied, true
}
