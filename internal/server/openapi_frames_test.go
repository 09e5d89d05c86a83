package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/brownout-io/brownout/internal/servertest"
	"github.com/brownout-io/brownout/sdk/wire"
)

// checkFrame validates one frame's JSON against a schema of the document.
func checkFrame(t *testing.T, doc *openAPI, schema string, data []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: not JSON: %v: %s", schema, err, data)
	}
	c := &schemaChecker{t: t, doc: doc}
	for _, e := range c.check(schema, map[string]any{"$ref": "#/components/schemas/" + schema}, v) {
		t.Errorf("%s: %s\nframe: %s", schema, e, data)
	}
}

func readFrame(t *testing.T, c *websocket.Conn) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return data
}

func dialRaw(t *testing.T, srv *servertest.Server, query string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := strings.Replace(srv.URL, "http://", "ws://", 1) + wire.SubscribePath + "?" + query
	h := http.Header{"Authorization": {"Bearer " + srv.AdminToken}}
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h, Subprotocols: []string{wire.Subprotocol}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// The document's frame schemas describe the frames the server really
// sends, and the frames the wire contract makes clients send, field for
// field (unknown fields are errors).
func TestOpenAPIFrameSchemasMatchRealFrames(t *testing.T) {
	doc := loadOpenAPI(t)
	srv := servertest.Start(t)
	c := dialRaw(t, srv, "service=checkout&instance=c-1")

	first := readFrame(t, c)
	checkFrame(t, doc, "StateMessage", first)
	var st wire.State
	if err := json.Unmarshal(first, &st); err != nil || st.Type != wire.TypeState || st.Epoch == "" {
		t.Fatalf("first frame %s: %v", first, err)
	}

	// A state with an override in force.
	srv.MustDo(t, "POST", "/api/v1/overrides", srv.AdminToken,
		map[string]any{"service": "checkout", "level": 2, "reason": "frame schema test", "ttl": "10m"}, http.StatusCreated, nil)
	var withOverride []byte
	for withOverride == nil {
		f := readFrame(t, c)
		if bytes.Contains(f, []byte(`"override":{`)) {
			withOverride = f
		}
	}
	checkFrame(t, doc, "StateMessage", withOverride)
	if err := json.Unmarshal(withOverride, &st); err != nil || st.Override == nil || st.Override.Level != 2 {
		t.Fatalf("override frame %s: %v", withOverride, err)
	}

	// An error frame answers a refused client frame.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"nonsense"}`)); err != nil {
		t.Fatal(err)
	}
	var errFrame []byte
	for errFrame == nil {
		if f := readFrame(t, c); bytes.Contains(f, []byte(`"type":"error"`)) {
			errFrame = f
		}
	}
	checkFrame(t, doc, "ErrorFrame", errFrame)

	// Reconnecting at the current version and epoch: "unchanged".
	c2 := dialRaw(t, srv, "service=checkout&instance=c-2&version="+strconv.FormatUint(st.Version, 10)+"&epoch="+st.Epoch)
	unchanged := readFrame(t, c2)
	checkFrame(t, doc, "UnchangedMessage", unchanged)
	if !bytes.Contains(unchanged, []byte(`"type":"unchanged"`)) {
		t.Fatalf("reconnect at the current version: %s", unchanged)
	}

	// What clients send, as the wire contract encodes it.
	checkFrame(t, doc, "AckFrame", wire.AppendAck(nil, 7))
	ack, _ := json.Marshal(wire.Ack{Type: wire.TypeAck, Version: 7})
	checkFrame(t, doc, "AckFrame", ack)
	cpu, mem, at := 12.5, 40.0, time.Now().UTC()
	rep, _ := json.Marshal(wire.ReportFrame{Type: wire.TypeReport, Report: wire.Report{
		CPUPercent: &cpu, MemoryPercent: &mem, Requests: 10, Errors: 1, At: &at,
		Components: map[string]wire.ComponentState{"payments": {Kind: "breaker", State: "closed", Metrics: map[string]float64{"failure_rate": 0.1}}},
	}})
	checkFrame(t, doc, "ReportFrame", rep)
}
