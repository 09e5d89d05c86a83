package server

import (
	"github.com/brownout-io/brownout/sdk/wire"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"

	"github.com/coder/websocket"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/auth"
	"github.com/brownout-io/brownout/internal/health"
	"github.com/brownout-io/brownout/internal/hub"
	"github.com/brownout-io/brownout/internal/netlimit"
)

// Subprotocol is the websocket subprotocol of the push protocol.
const Subprotocol = wire.Subprotocol

// maxBadFrames is how many refused frames in a row end a connection.
const maxBadFrames = 20

// clientFrame is anything a subscriber may send: an ack or a report.
type clientFrame struct {
	Type    string `json:"type"`
	Version uint64 `json:"version,omitempty"`
	health.Report
}

// subscribe upgrades to the push protocol: the current state at once, then
// a full snapshot on every change (latest wins), acks and reports from the
// client on the same connection.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r)
	q := r.URL.Query()
	if err := onlyParams(q, "service", "instance", "version", "epoch"); err != nil {
		writeError(w, r, err)
		return
	}
	service, instance := q.Get("service"), q.Get("instance")
	if err := brownout.CheckName("service", service); err != nil {
		writeError(w, r, err)
		return
	}
	if err := brownout.CheckName("instance", instance); err != nil {
		writeError(w, r, err)
		return
	}
	var known uint64
	if v := q.Get("version"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, r, brownout.FieldErrorf(brownout.EBADREQUEST, "version", "must be a non-negative whole number"))
			return
		}
		known = n
	}
	epoch := q.Get("epoch")
	if len(epoch) > wire.MaxEpochLen {
		writeError(w, r, brownout.FieldErrorf(brownout.EBADREQUEST, "epoch", "is not an epoch from a state frame"))
		return
	}
	if !p.CanActFor(service) {
		writeError(w, r, brownout.Errorf(brownout.EFORBIDDEN, "this token may not subscribe to service %q", service))
		return
	}
	if n := s.hub.ConnectionsForToken(p.TokenID); n >= s.cfg.MaxConnsPerToken {
		w.Header().Set("Retry-After", "5")
		writeError(w, r, brownout.Errorf(brownout.ETHROTTLED, "this token already has %d connections, the most allowed", n))
		return
	}
	release, err := s.subSlots.Acquire(clientAddr(r), false)
	if err != nil {
		capName, msg := "subscribers_per_addr", fmt.Sprintf("this address already holds %d subscriptions, the most allowed (--max-subscribers-per-addr)", s.cfg.MaxSubscribersPerAddr)
		if errors.Is(err, netlimit.ErrTotal) {
			capName, msg = "subscribers_total", fmt.Sprintf("the controller already serves %d subscriptions, the most allowed (--max-subscribers)", s.cfg.MaxSubscribers)
		}
		s.metrics.ConnsRefused.WithLabelValues(capName).Inc()
		w.Header().Set("Retry-After", "5")
		writeError(w, r, brownout.Errorf(brownout.ETHROTTLED, "%s", msg))
		return
	}
	sb := &smallBuffers{ResponseWriter: w}
	c, err := websocket.Accept(sb, r, &websocket.AcceptOptions{
		Subprotocols:    []string{Subprotocol},
		OriginPatterns:  s.cfg.OriginPatterns,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		// Accept has answered the client (bad handshake, forbidden origin).
		release()
		return
	}
	c.SetReadLimit(s.cfg.MaxFrame)
	// The connection outlives this handler. Its reads run on a goroutine
	// of its own, started here with a shallow stack, and the handler
	// returns: net/http's goroutine (its stack grown by the handshake and
	// the middleware), the request and its headers are freed, about half
	// of what an idle subscriber used to hold.
	s.conns.Add(1)
	go s.serveSubscriber(c, sb.conn, p, service, instance, known, epoch, release)
}

// serveSubscriber runs one upgraded connection until it ends: it registers
// the subscriber, starts its writer and reads acks and reports.
func (s *Server) serveSubscriber(c *websocket.Conn, raw net.Conn, p auth.Principal, service, instance string, known uint64, epoch string, release func()) {
	defer s.conns.Add(-1)
	defer release()
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("subscriber connection panicked", "service", service, "instance", instance, "panic", v, "stack", string(debug.Stack()))
			c.CloseNow()
		}
	}()
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), loggerKey, s.log))
	defer cancel()
	if err := s.ctl.EnsureService(ctx, service); err != nil {
		s.log.Warn("subscription refused", "service", service, "instance", instance, "err", err)
		s.metrics.WSCloses.WithLabelValues("refused").Inc()
		_ = c.Close(websocket.StatusPolicyViolation, truncateReason(brownout.ErrorMessage(err)))
		return
	}
	sub, err := s.hub.Subscribe(service, instance, p.TokenID, known, epoch)
	if err != nil {
		s.log.Warn("subscription refused", "service", service, "instance", instance, "err", err)
		s.metrics.WSCloses.WithLabelValues("refused").Inc()
		code := websocket.StatusPolicyViolation
		if brownout.ErrorCode(err) == brownout.EUNAUTHORIZED {
			code = hub.CloseRevoked
		}
		_ = c.Close(code, truncateReason(brownout.ErrorMessage(err)))
		return
	}
	defer s.hub.Unsubscribe(sub)
	// The token was checked before the upgrade; a revocation since then
	// may have closed the token's subscriptions before this one was
	// registered. Revocation drops the token from the authenticator first
	// and closes its registered subscriptions second, so checking again
	// after registering leaves no gap: either the close saw this
	// subscription, or this check sees the revocation.
	if !s.auth.Active(p.TokenID) {
		_ = c.Close(websocket.StatusCode(hub.CloseRevoked), "token revoked")
		s.metrics.WSCloses.WithLabelValues("revoked").Inc()
		return
	}

	w8 := newConnWriter(s, ctx, cancel, c, sub)
	reason := s.readLoop(ctx, c, sub, p)
	cancel()
	if reason == "too_big" {
		// The library has sent 1009; the rest of the frame is unread.
		lingerClose(raw)
	}
	w8.stop()
	s.metrics.WSCloses.WithLabelValues(reason).Inc()
}

// readLoop handles acks and reports until the connection ends, and returns
// why it ended (for metrics).
func (s *Server) readLoop(ctx context.Context, c *websocket.Conn, sub *hub.Subscriber, p auth.Principal) string {
	bad := 0
	var buf []byte
	for {
		// Reads take no context (a cancellable one costs the websocket
		// library a callback per frame): the writer cancels ctx and then
		// closes the connection, which ends the read. Every subscriber
		// acks every change, so frames are read into one buffer per
		// connection instead of a fresh slice each: nothing keeps a
		// frame's bytes past handleFrame.
		typ, data, err := readMessage(c, buf[:0])
		buf = data
		if cap(buf) > maxKeptBuffer {
			buf = nil
		}
		if err != nil {
			switch {
			case errors.Is(err, websocket.ErrMessageTooBig), websocket.CloseStatus(err) == websocket.StatusMessageTooBig:
				return "too_big"
			case websocket.CloseStatus(err) != -1:
				return "client_closed"
			case ctx.Err() != nil:
				return "ended"
			default:
				return "read_error"
			}
		}
		if ferr := s.handleFrame(ctx, sub, p, typ, data); ferr != nil {
			bad++
			s.sendError(ctx, c, ferr)
			if bad >= maxBadFrames {
				_ = c.Close(websocket.StatusPolicyViolation, "too many invalid frames")
				return "bad_frames"
			}
			continue
		}
		bad = 0
	}
}

// maxKeptBuffer is the largest read buffer a connection keeps between
// frames; a larger frame's (a report with many components) is dropped
// once handled.
const maxKeptBuffer = 4 << 10

// readMessage reads the next message into buf, grown as needed.
func readMessage(c *websocket.Conn, buf []byte) (websocket.MessageType, []byte, error) {
	typ, r, err := c.Reader(context.Background())
	if err != nil {
		return 0, buf, err
	}
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(64, cap(buf)))
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

func (s *Server) handleFrame(ctx context.Context, sub *hub.Subscriber, p auth.Principal, typ websocket.MessageType, data []byte) error {
	if typ != websocket.MessageText {
		return brownout.Errorf(brownout.EBADREQUEST, "binary frames are not supported; send JSON text frames")
	}
	if v, ok := parseAck(data); ok {
		s.hub.Ack(sub, v)
		return nil
	}
	f, err := decodeClientFrame(data, sub.Service, sub.Instance)
	if err != nil {
		return err
	}
	switch f.Type {
	case wire.TypeAck:
		s.hub.Ack(sub, f.Version)
		return nil
	case wire.TypeReport:
		rep := f.Report
		if rep.Service == "" {
			rep.Service = sub.Service
		}
		if rep.Instance == "" {
			rep.Instance = sub.Instance
		}
		if rep.Service != sub.Service || rep.Instance != sub.Instance {
			err := brownout.Errorf(brownout.EFORBIDDEN, "a connection reports only for its own service and instance (%s/%s)", sub.Service, sub.Instance)
			s.metrics.ReportsRejected.WithLabelValues("ws", brownout.EFORBIDDEN).Inc()
			return err
		}
		if err := rep.ValidateWith(s.cfg.Now(), s.cfg.ReportLimits); err != nil {
			s.metrics.ReportsRejected.WithLabelValues("ws", brownout.ErrorCode(err)).Inc()
			return err
		}
		if err := s.ctl.Ingest(ctx, rep); err != nil {
			s.metrics.ReportsRejected.WithLabelValues("ws", brownout.ErrorCode(err)).Inc()
			return err
		}
		s.metrics.ReportsIngested.WithLabelValues("ws").Inc()
		return nil
	case "":
		return brownout.FieldErrorf(brownout.EBADREQUEST, "type", "is required (ack or report)")
	default:
		return brownout.FieldErrorf(brownout.EBADREQUEST, "type", "%q is not a frame type (ack or report)", truncate(f.Type))
	}
}

// decodeClientFrame decodes an ack or report frame. A report in the plain
// form clients send takes health.DecodeReportFrame's path, which accepts
// and refuses exactly what the general decoder does; anything else goes
// through brownout.DecodeJSON.
func decodeClientFrame(data []byte, service, instance string) (clientFrame, error) {
	if r, ok := health.DecodeReportFrame(data, service, instance); ok {
		return clientFrame{Type: wire.TypeReport, Report: r}, nil
	}
	var f clientFrame
	if err := brownout.DecodeJSON(data, &f); err != nil {
		return clientFrame{}, err
	}
	return f, nil
}

// parseAck recognises an ack in its canonical form without a JSON decoder:
// one arrives from every subscriber on every change, and the decoder costs
// several allocations each.
func parseAck(data []byte) (version uint64, ok bool) { return wire.ParseAck(data) }

func (s *Server) sendError(ctx context.Context, c *websocket.Conn, err error) {
	f := wire.Error{Type: wire.TypeError, Code: brownout.ErrorCode(err), Message: brownout.ErrorMessage(err)}
	var be *brownout.Error
	if errors.As(err, &be) {
		f.Field = be.Field
	}
	b, _ := json.Marshal(f)
	wctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	_ = c.Write(wctx, websocket.MessageText, b)
}

// truncateReason keeps a close reason within the 123 bytes a close frame
// allows.
func truncateReason(s string) string {
	if len(s) > wire.MaxCloseReason-3 {
		return s[:wire.MaxCloseReason-3]
	}
	return s
}
