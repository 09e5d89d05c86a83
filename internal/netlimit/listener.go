package netlimit

import (
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"time"
)

// Listener caps concurrent TCP connections in total and per peer address.
// A connection over a cap is closed as soon as it is accepted, before the
// HTTP server spends a goroutine or a buffer on it, so an attacker holding
// idle connections exhausts its own quota, not the process's file
// descriptors. Trusted proxies are exempt from the per-address cap (every
// client behind them shares their address); the HTTP layer caps those
// clients by their real address.
type Listener struct {
	net.Listener
	slots    *Slots
	proxies  Proxies
	log      *slog.Logger
	onRefuse func(reason string)

	lastLog atomic.Int64 // unix nanoseconds of the last refusal logged
}

// NewListener wraps ln with a total cap and a per-address cap (0: none).
// onRefuse, when non-nil, is called with "total" or "per_addr" for every
// refused connection (for metrics).
func NewListener(ln net.Listener, total, perAddr int, proxies Proxies, log *slog.Logger, onRefuse func(reason string)) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listener{Listener: ln, slots: NewSlots(total, perAddr), proxies: proxies, log: log, onRefuse: onRefuse}
}

// Accept returns the next connection within the caps; connections over a
// cap are closed and never returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := hostOnly(c.RemoteAddr().String())
		release, err := l.slots.Acquire(addr, l.proxies.Trusted(addr))
		if err != nil {
			l.refuse(c, addr, err)
			continue
		}
		return &conn{Conn: c, release: release}, nil
	}
}

// Open is the number of connections held.
func (l *Listener) Open() int { return l.slots.Total() }

func (l *Listener) refuse(c net.Conn, addr string, err error) {
	// No answer: writing one could block on a peer that does not read.
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST: no TIME_WAIT left behind per refusal
	}
	_ = c.Close()
	reason := "per_addr"
	if errors.Is(err, ErrTotal) {
		reason = "total"
	}
	if l.onRefuse != nil {
		l.onRefuse(reason)
	}
	// At most one log line per second: the refusals are what the attacker
	// wants to be expensive.
	now := time.Now().UnixNano()
	if last := l.lastLog.Load(); now-last > int64(time.Second) && l.lastLog.CompareAndSwap(last, now) {
		l.log.Warn("connection refused: cap reached", "addr", addr, "reason", reason, "open", l.slots.Total())
	}
}

// conn releases its slot once, on the first Close.
type conn struct {
	net.Conn
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
