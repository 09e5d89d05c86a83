package server_test

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/brownout-io/brownout/internal/servertest"
)

// An upgraded connection reads and writes through buffers smaller than
// net/http's. What the client sent in the same write as its handshake
// must still come first, and frames larger than either buffer must cross
// whole: a state frame of several KiB to the client, a report of several
// KiB from it.
func TestUpgradedConnectionBuffers(t *testing.T) {
	s := servertest.Start(t)
	_, tok := s.Token(t, "sdk", "buf")
	flags := map[string]bool{}
	for i := range 120 {
		flags[fmt.Sprintf("optional-feature-%03d", i)] = i%2 == 0
	}
	var levels []map[string]any
	for l := range 4 {
		levels = append(levels, map[string]any{"level": l, "flags": flags})
	}
	s.MustDo(t, http.MethodPut, "/api/v1/services/buf/flags", s.AdminToken, map[string]any{"levels": levels}, http.StatusOK, nil)

	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	handshake := "GET /api/v1/subscribe?service=buf&instance=raw HTTP/1.1\r\n" +
		"Host: " + u.Host + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: brownout.v1\r\n" +
		"Authorization: Bearer " + tok + "\r\n\r\n"
	// The first frame travels in the handshake's own write, so net/http
	// has read it before the upgrade.
	if _, err := conn.Write(append([]byte(handshake), clientFrame(`{"type":"bogus"}`)...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake answered %d", resp.StatusCode)
	}

	// The flag set's push may trail the subscription: read until both the
	// state with every flag and the answer to the early frame are in.
	var st struct {
		Type    string          `json:"type"`
		Version uint64          `json:"version"`
		Field   string          `json:"field"`
		Flags   map[string]bool `json:"flags"`
	}
	sawError, sawState := false, false
	var version uint64
	for !sawError || !sawState {
		frame := serverFrame(t, br)
		st.Flags, st.Field = nil, ""
		if err := json.Unmarshal(frame, &st); err != nil {
			t.Fatalf("frame of %d bytes does not decode: %v", len(frame), err)
		}
		switch st.Type {
		case "error":
			if st.Field != "type" {
				t.Fatalf("the frame sent with the handshake was answered with %s, want an error naming type", frame)
			}
			sawError = true
		case "state":
			if _, ok := st.Flags["optional-feature-000"]; !ok {
				continue // the state from before the flag set
			}
			if len(frame) < 3<<10 {
				t.Fatalf("state frame is %d bytes; the test needs one larger than the write buffer", len(frame))
			}
			for name, on := range flags {
				if got, ok := st.Flags[name]; !ok || got != on {
					t.Fatalf("state of %d bytes: flag %s is %v (present %v), want %v", len(frame), name, got, ok, on)
				}
			}
			sawState, version = true, st.Version
		default:
			t.Fatalf("unexpected frame %s", frame)
		}
	}

	// A report larger than the read buffer.
	var comps []string
	for i := range 40 {
		comps = append(comps, fmt.Sprintf(`"component-%02d":{"kind":"breaker","state":"closed","metrics":{"failure_rate":0.01,"in_use":3}}`, i))
	}
	report := `{"type":"report","cpu_percent":12.5,"memory_percent":40,"requests":100,"errors":1,"components":{` + strings.Join(comps, ",") + `}}`
	if len(report) < 2<<10 {
		t.Fatalf("report is %d bytes; the test needs one larger than the read buffer", len(report))
	}
	if _, err := conn.Write(append(clientFrame(report), clientFrame(fmt.Sprintf(`{"type":"ack","version":%d}`, version))...)); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Items []struct {
			Name string `json:"name"`
		} `json:"items"`
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(got.Items) != 40 {
		if time.Now().After(deadline) {
			t.Fatalf("the %d-byte report was not taken: the instance lists %d components", len(report), len(got.Items))
		}
		time.Sleep(20 * time.Millisecond)
		got.Items = nil
		if code, body := s.Do(t, http.MethodGet, "/api/v1/services/buf/instances/raw/components", s.AdminToken, nil); code == http.StatusOK {
			_ = json.Unmarshal(body, &got)
		}
	}
}

// clientFrame is a masked text frame, as a client sends it.
func clientFrame(payload string) []byte {
	key := [4]byte{0x1f, 0x2e, 0x3d, 0x4c}
	f := []byte{0x81}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xffff:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	f = append(f, key[:]...)
	for i := range len(payload) {
		f = append(f, payload[i]^key[i%4])
	}
	return f
}

// serverFrame reads one unmasked, unfragmented text frame.
func serverFrame(t *testing.T, br *bufio.Reader) []byte {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatal(err)
	}
	if h[0] != 0x81 || h[1]&0x80 != 0 {
		t.Fatalf("frame header %#x %#x: want an unmasked final text frame", h[0], h[1])
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			t.Fatal(err)
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			t.Fatal(err)
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<20 {
		t.Fatalf("frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatal(err)
	}
	return p
}
