package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestRawFramesBesideLibraryWrites sends pre-encoded report frames on a
// subscriber's socket while the websocket library writes acks on the same
// connection, and checks that the server reads every message whole.
func TestRawFramesBesideLibraryWrites(t *testing.T) {
	const each = 300
	got := make(chan []byte, 2*each)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{subprotocol}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, data, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if typ != websocket.MessageText {
				t.Errorf("message type %v", typ)
			}
			got <- data
		}
	}))
	defer srv.Close()
	f := newFleet("ws"+srv.URL[len("http"):], []string{"svc"}, nil, 1)
	f.raw = true
	s := f.subs[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := s.dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	rc := s.raw.Load()
	if rc == nil || rc.ws != c {
		t.Fatal("dial kept no socket")
	}
	payloads := reportFrames()
	masked := maskedFrames(payloads)
	if len(masked) != 16*len(payloads) {
		t.Fatalf("%d masked frames, want %d", len(masked), 16*len(payloads))
	}
	ack := []byte(`{"type":"ack","version":7}`)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < each; i++ {
			if err := rc.write(masked[i%len(masked)]); err != nil {
				t.Errorf("raw write: %v", err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < each; i++ {
			if err := c.Write(ctx, websocket.MessageText, ack); err != nil {
				t.Errorf("library write: %v", err)
				return
			}
		}
	}()
	wg.Wait()
	reports, acks := 0, 0
	for i := 0; i < 2*each; i++ {
		var m []byte
		select {
		case m = <-got:
		case <-ctx.Done():
			t.Fatalf("read %d reports and %d acks of %d each", reports, acks, each)
		}
		switch {
		case bytes.Equal(m, ack):
			acks++
		case bytes.Equal(m, payloads[(reports%len(masked))%len(payloads)]):
			reports++
		default:
			t.Fatalf("message %d is %q, neither the next report nor an ack", i, m)
		}
	}
	if reports != each || acks != each {
		t.Fatalf("read %d reports and %d acks, want %d each", reports, acks, each)
	}
}
