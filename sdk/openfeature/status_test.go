package openfeature

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/brownout-io/brownout/sdk"
	of "github.com/open-feature/go-sdk/openfeature"
)

func connect(tb testing.TB, base string, opts ...sdk.Option) *sdk.Client {
	tb.Helper()
	opts = append([]sdk.Option{sdk.WithLogger(discard), sdk.WithReportInterval(-1)}, opts...)
	c, err := sdk.Connect(context.Background(), base, "checkout", "checkout-1", opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// events records the status events the OpenFeature SDK delivers to a
// client's handlers (the SDK itself consumes the provider's channel).
type events struct {
	mu  sync.Mutex
	got []typedEvent
}

type typedEvent struct {
	typ of.EventType
	of.EventDetails
}

func (e *events) record(client *of.Client) {
	for _, typ := range []of.EventType{of.ProviderReady, of.ProviderStale, of.ProviderError} {
		cb := func(d of.EventDetails) {
			e.mu.Lock()
			e.got = append(e.got, typedEvent{typ, d})
			e.mu.Unlock()
		}
		client.AddHandler(typ, &cb)
	}
}

// waitEvent waits for an event of typ delivered after the first n.
func (e *events) waitEvent(tb testing.TB, n int, typ of.EventType) of.EventDetails {
	tb.Helper()
	var found of.EventDetails
	waitFor(tb, string(typ), func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, d := range e.got[min(n, len(e.got)):] {
			if d.typ == typ {
				found = d.EventDetails
				return true
			}
		}
		return false
	})
	return found
}

func (e *events) len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.got)
}

// Status follows reality: READY while connected, STALE once the controller
// has been unreachable past the staleness limit, READY again on recovery,
// and a fatal ERROR once the token is revoked. Reasons follow: STATIC live,
// CACHED during a short outage, STALE past the limit.
func TestStatusFollowsTheController(t *testing.T) {
	fake := newFakeController(t, map[string]bool{"analytics": true})
	client := connect(t, fake.srv.URL)
	waitFor(t, "connected", func() bool { return client.Stats().Connected })
	p := NewProvider(client, WithStaleAfter(300*time.Millisecond), withPoll(20*time.Millisecond))
	const domain = "brownout-status"
	if err := of.SetNamedProviderAndWait(domain, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = of.SetNamedProviderAndWait(domain, of.NoopProvider{}) })
	flags := of.NewClient(domain)
	var evs events
	evs.record(flags)
	ctx := context.Background()
	reason := func() of.Reason {
		d, _ := flags.BooleanValueDetails(ctx, "analytics", false, of.EvaluationContext{})
		return d.Reason
	}
	if flags.State() != of.ReadyState || reason() != of.StaticReason {
		t.Fatalf("connected: state %s, reason %s", flags.State(), reason())
	}

	fake.setDown(true)
	waitFor(t, "disconnected", func() bool { return !client.Stats().Connected })
	waitFor(t, "reason CACHED during a short outage", func() bool { return reason() == of.CachedReason || p.Status() == of.StaleState })
	n := evs.len()
	evs.waitEvent(t, n, of.ProviderStale)
	waitFor(t, "client state STALE", func() bool { return flags.State() == of.StaleState })
	if d, _ := flags.BooleanValueDetails(ctx, "analytics", false, of.EvaluationContext{}); d.Reason != staleReason || !d.Value {
		t.Fatalf("stale: %+v, want the last value with reason STALE", d)
	}

	n = evs.len()
	fake.setDown(false)
	evs.waitEvent(t, n, of.ProviderReady)
	waitFor(t, "client state READY and reason STATIC", func() bool {
		return flags.State() == of.ReadyState && reason() == of.StaticReason
	})

	n = evs.len()
	fake.revoke()
	evs.waitEvent(t, n, of.ProviderError)
	// FATAL (not ERROR) means the event carried PROVIDER_FATAL.
	waitFor(t, "client state FATAL", func() bool { return flags.State() == of.FatalState })
	if d, _ := flags.BooleanValueDetails(ctx, "analytics", false, of.EvaluationContext{}); d.Value || d.ErrorCode != of.ProviderFatalCode {
		t.Fatalf("fatal: %+v, want the caller's default with PROVIDER_FATAL", d)
	}
}

// The level is an integer flag and its name a string flag; the metadata's
// version reads with GetInt.
func TestLevelFlagsAndMetadata(t *testing.T) {
	fake := newFakeController(t, map[string]bool{"analytics": false})
	fake.level, fake.version = 2, 7
	client := connect(t, fake.srv.URL)
	waitFor(t, "connected", func() bool { return client.Stats().Connected })
	const domain = "brownout-levels"
	if err := of.SetNamedProviderAndWait(domain, NewProvider(client)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = of.SetNamedProviderAndWait(domain, of.NoopProvider{}) })
	flags := of.NewClient(domain)
	ctx := context.Background()

	lvl, err := flags.IntValueDetails(ctx, FlagLevel, -1, of.EvaluationContext{})
	if err != nil || lvl.Value != 2 || lvl.Reason != of.StaticReason || lvl.Variant != "ESSENTIAL" {
		t.Fatalf("level = %+v, %v", lvl, err)
	}
	name, err := flags.StringValueDetails(ctx, FlagLevelName, "", of.EvaluationContext{})
	if err != nil || name.Value != "ESSENTIAL" || name.Reason != of.StaticReason {
		t.Fatalf("level name = %+v, %v", name, err)
	}
	if v, err := name.FlagMetadata.GetInt(MetaVersion); err != nil || v != 7 {
		t.Fatalf("GetInt(version) = %d, %v", v, err)
	}
	if v, err := name.FlagMetadata.GetInt(MetaLevel); err != nil || v != 2 {
		t.Fatalf("GetInt(level) = %d, %v", v, err)
	}
	if s, err := name.FlagMetadata.GetString(MetaSource); err != nil || s != "controller" {
		t.Fatalf("GetString(source) = %q, %v", s, err)
	}
	// The level flags under the wrong type.
	if d, _ := flags.BooleanValueDetails(ctx, FlagLevel, true, of.EvaluationContext{}); d.ErrorCode != of.TypeMismatchCode || !d.Value {
		t.Fatalf("level as boolean = %+v", d)
	}
	if d, _ := flags.StringValueDetails(ctx, FlagLevel, "x", of.EvaluationContext{}); d.ErrorCode != of.TypeMismatchCode {
		t.Fatalf("level as string = %+v", d)
	}
	if d, _ := flags.IntValueDetails(ctx, "analytics", 5, of.EvaluationContext{}); d.ErrorCode != of.TypeMismatchCode || d.Value != 5 {
		t.Fatalf("boolean flag as int = %+v", d)
	}
}

// Before the controller answers, the caller's defaults resolve with reason
// DEFAULT.
func TestDefaultsReasonIsDefault(t *testing.T) {
	p := NewProvider(offlineClient(t, map[string]bool{"analytics": true}))
	if d := p.BooleanEvaluation(context.Background(), "analytics", false, nil); d.Reason != of.DefaultReason {
		t.Fatalf("reason %s, want DEFAULT", d.Reason)
	}
}
