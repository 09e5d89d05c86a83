package openfeature

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/brownout-io/brownout/sdk"
	"github.com/coder/websocket"
	of "github.com/open-feature/go-sdk/openfeature"
)

var discard = slog.New(slog.DiscardHandler)

func offlineClient(tb testing.TB, flags map[string]bool) *sdk.Client {
	tb.Helper()
	c, err := sdk.Connect(context.Background(), "http://127.0.0.1:1", "checkout", "checkout-1",
		sdk.WithDefaults(sdk.LevelFull, flags), sdk.WithLogger(discard), sdk.WithReportInterval(-1))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func TestBooleanEvaluation(t *testing.T) {
	p := NewProvider(offlineClient(t, map[string]bool{"analytics": true, "search": false}))
	ctx := context.Background()

	got := p.BooleanEvaluation(ctx, "analytics", false, nil)
	if !got.Value || got.Error() != nil || got.Variant != "on" || got.Reason != of.DefaultReason {
		t.Fatalf("analytics = %+v", got)
	}
	if md := got.FlagMetadata; md[MetaLevel] != 0 || md[MetaLevelName] != "FULL" || md[MetaVersion] != int64(0) || md[MetaSource] != "defaults" {
		t.Fatalf("metadata = %v", md)
	}
	if got := p.BooleanEvaluation(ctx, "search", true, nil); got.Value || got.Variant != "off" {
		t.Fatalf("search = %+v", got)
	}
	got = p.BooleanEvaluation(ctx, "missing", true, nil)
	if !got.Value || got.ResolutionDetail().ErrorCode != of.FlagNotFoundCode || got.Reason != of.ErrorReason {
		t.Fatalf("missing = %+v", got)
	}
}

func TestOtherTypes(t *testing.T) {
	p := NewProvider(offlineClient(t, map[string]bool{"analytics": true}))
	ctx := context.Background()
	for name, d := range map[string]of.ProviderResolutionDetail{
		"string": p.StringEvaluation(ctx, "analytics", "x", nil).ProviderResolutionDetail,
		"float":  p.FloatEvaluation(ctx, "analytics", 1, nil).ProviderResolutionDetail,
		"int":    p.IntEvaluation(ctx, "analytics", 1, nil).ProviderResolutionDetail,
		"object": p.ObjectEvaluation(ctx, "analytics", nil, nil).ProviderResolutionDetail,
	} {
		if code := d.ResolutionDetail().ErrorCode; code != of.TypeMismatchCode {
			t.Errorf("%s: error code %q, want TYPE_MISMATCH", name, code)
		}
	}
	if d := p.StringEvaluation(ctx, "nope", "x", nil); d.Value != "x" || d.ResolutionDetail().ErrorCode != of.FlagNotFoundCode {
		t.Errorf("unknown string flag = %+v", d)
	}
}

func TestThroughOpenFeatureClient(t *testing.T) {
	p := NewProvider(offlineClient(t, map[string]bool{"analytics": true}))
	if err := of.SetNamedProviderAndWait("provider-test", p); err != nil {
		t.Fatal(err)
	}
	defer of.SetNamedProviderAndWait("provider-test", of.NoopProvider{})
	c := of.NewClient("provider-test")
	d, err := c.BooleanValueDetails(context.Background(), "analytics", false, of.EvaluationContext{})
	if err != nil || !d.Value {
		t.Fatalf("details = %+v, %v", d, err)
	}
	if lvl, _ := d.FlagMetadata.GetString(MetaLevelName); lvl != "FULL" {
		t.Fatalf("metadata = %v", d.FlagMetadata)
	}
}

// TestChangeEvents drives a client from a minimal controller that pushes a
// second state, and expects a configuration-changed event naming the flag.
func TestChangeEvents(t *testing.T) {
	push := make(chan map[string]any)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"brownout.v1"}})
		if err != nil {
			return
		}
		defer conn.CloseNow()
		// Read (and drop) the client's acks so that pings and closes work.
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		go func() {
			defer cancel()
			for {
				if _, _, err := conn.Read(ctx); err != nil {
					return
				}
			}
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case st := <-push:
				b, _ := json.Marshal(st)
				conn.Write(ctx, websocket.MessageText, b)
			}
		}
	}))
	defer srv.Close()
	client, err := sdk.Connect(context.Background(), srv.URL, "checkout", "checkout-1",
		sdk.WithLogger(discard), sdk.WithReportInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	p := NewProvider(client)
	p.Init(of.EvaluationContext{})
	defer p.Shutdown()

	state := func(v int, level int, flags map[string]bool) map[string]any {
		return map[string]any{"type": "state", "service": "checkout", "version": v, "level": level,
			"computed_level": level, "flags": flags, "override": nil, "cause": "signal",
			"changed_at": time.Now().Format(time.RFC3339)}
	}
	push <- state(1, 0, map[string]bool{"analytics": true, "search": true})
	// Changes are coalesced for slow consumers; wait for the first one so
	// that the second compares with it.
	deadline := time.After(5 * time.Second)
	for first := false; !first; {
		select {
		case ev := <-p.EventChannel():
			first = ev.EventMetadata[MetaVersion] == int64(1)
		case <-deadline:
			t.Fatal("no event for the first state")
		}
	}
	push <- state(2, 1, map[string]bool{"analytics": false, "search": true})
	for {
		select {
		case ev := <-p.EventChannel():
			if ev.EventType != of.ProviderConfigChange {
				t.Fatalf("event = %+v", ev)
			}
			if ev.EventMetadata[MetaVersion] == int64(2) {
				if !slices.Equal(ev.FlagChanges, []string{"analytics", FlagLevel, FlagLevelName}) {
					t.Fatalf("flag changes = %v", ev.FlagChanges)
				}
				d := p.BooleanEvaluation(context.Background(), "analytics", true, nil)
				if d.Value || d.Reason != of.StaticReason || d.FlagMetadata[MetaLevel] != 1 {
					t.Fatalf("after change = %+v", d)
				}
				return
			}
		case <-deadline:
			t.Fatal("no change event")
		}
	}
}

// The provider itself allocates nothing per evaluation: the metadata map is
// built once per state. (The OpenFeature client copies it per call.)
func TestProviderDoesNotAllocate(t *testing.T) {
	p := NewProvider(offlineClient(t, map[string]bool{"analytics": true}))
	ctx := context.Background()
	if a := testing.AllocsPerRun(1000, func() { p.BooleanEvaluation(ctx, "analytics", false, nil) }); a != 0 {
		t.Fatalf("BooleanEvaluation allocates %v times", a)
	}
}
