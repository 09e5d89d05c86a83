package server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// Buffer sizes of an upgraded connection. net/http hands a hijacked
// connection over with 4 KiB read and write buffers, kept for the
// connection's life: 8 KiB of an idle subscriber's memory. What crosses a
// subscriber's connection is small — acks of about 30 bytes, reports and
// state frames of a few hundred — so smaller buffers serve it in the same
// number of system calls; a larger frame takes one more.
const (
	wsReadBuffer  = 1 << 10
	wsWriteBuffer = 2 << 10
)

// smallBuffers lets the websocket upgrade through with buffers of its own
// sizes instead of net/http's.
type smallBuffers struct {
	http.ResponseWriter
	conn net.Conn // the hijacked connection, once Hijack has run
}

// Hijack hands the connection over with small buffers. Bytes the client
// sent after its handshake, which net/http has read already, stay first
// in line.
func (s *smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("response writer cannot hijack")
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	// The websocket library takes what the reader has buffered as the
	// start of the stream, so early bytes are moved into the new buffer.
	br := bufio.NewReaderSize(conn, wsReadBuffer)
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn), max(n, wsReadBuffer))
		if _, err := br.Peek(n); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	s.conn = conn
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, wsWriteBuffer)), nil
}

// Lingering close, after the controller refused a frame it did not read
// to its end. Closing a socket with unread bytes in it makes the kernel
// answer with a reset, which can reach the client before it has read the
// close frame: it would see "connection reset" instead of 1009, and its
// own write of the oversized frame fails. So the controller stops
// sending, reads and drops what still arrives until the client closes,
// and closes then, or after lingerFor or lingerBytes at most.
const (
	lingerFor   = 2 * time.Second
	lingerBytes = 1 << 20
)

// lingerClose half-closes conn, drains it within the bounds above and
// closes it. The close frame must have been written already.
func lingerClose(conn net.Conn) {
	if conn == nil {
		return
	}
	defer conn.Close()
	if hc, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = hc.CloseWrite()
	}
	_ = conn.SetReadDeadline(time.Now().Add(lingerFor))
	_, _ = io.CopyN(io.Discard, conn, lingerBytes)
}
