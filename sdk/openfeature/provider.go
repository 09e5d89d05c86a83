// Package openfeature is a Brownout provider for the OpenFeature Go SDK, so
// that code written against the OpenFeature API reads Brownout flags.
//
// # Flags
//
// Brownout flags are booleans; the provider resolves them from the client's
// current snapshot, without I/O. Two more flags describe the level itself:
// FlagLevel ("brownout.level", an integer 0–3) and FlagLevelName
// ("brownout.level_name", a string such as "ESSENTIAL"). Evaluating a flag
// as the wrong type fails with TYPE_MISMATCH; a flag Brownout does not know
// (neither the controller nor the client's defaults) fails with
// FLAG_NOT_FOUND; both return the caller's default value.
//
// Every resolution carries flag metadata: "level" (int), "level_name"
// (string), "version" (int64, the state's version) and "source" (string, see
// sdk.Source), readable with FlagMetadata's GetInt and GetString.
//
// # Reasons
//
//   - STATIC: the state the controller pushed, on a live connection (or the
//     level this host's break-glass switch forces).
//   - CACHED: a state from before — the state file before the controller
//     answered, or the controller's last state during an outage shorter
//     than the staleness limit.
//   - STALE: the controller has been unreachable for longer than the
//     staleness limit; the last known (or the staleness policy's) state.
//   - DEFAULT: the caller's defaults, nothing having been heard yet.
//   - ERROR: the flag could not be resolved (FLAG_NOT_FOUND, TYPE_MISMATCH).
//
// # Status and events
//
// The provider is READY at once (the client serves a state from the start).
// It emits PROVIDER_STALE once the controller has been unreachable for
// longer than the staleness limit (WithStaleAfter, default 30 s, the
// controller's own stale_after), PROVIDER_ERROR with PROVIDER_FATAL when the
// client has stopped for good (its token was revoked or is for another
// service), PROVIDER_READY when it recovers, and
// PROVIDER_CONFIGURATION_CHANGED, naming the changed flags, whenever the
// state changes.
//
// It lives in its own module so that the core SDK does not depend on
// OpenFeature.
package openfeature

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brownout-io/brownout/sdk"
	of "github.com/open-feature/go-sdk/openfeature"
)

// Keys of the flags that describe the level.
const (
	FlagLevel     = "brownout.level"      // integer 0–3
	FlagLevelName = "brownout.level_name" // "FULL", "REDUCED", "ESSENTIAL" or "MAINTENANCE"
)

// Metadata keys of each resolution.
const (
	MetaLevel     = "level"      // int
	MetaLevelName = "level_name" // string
	MetaVersion   = "version"    // int64
	MetaSource    = "source"     // string, see sdk.Source
)

// staleReason is the specification's STALE reason, which the go-sdk does not
// name.
const staleReason of.Reason = "STALE"

// DefaultStaleAfter is how long the controller may be unreachable before
// the provider reports STALE, unless WithStaleAfter says otherwise.
const DefaultStaleAfter = 30 * time.Second

// Option configures a Provider.
type Option func(*Provider)

// WithStaleAfter sets the staleness limit: how long the controller may be
// unreachable before the provider emits PROVIDER_STALE and resolves with
// reason STALE. It should match the client's staleness policy, if any.
func WithStaleAfter(d time.Duration) Option {
	return func(p *Provider) {
		if d > 0 {
			p.staleAfter = d
		}
	}
}

// withPoll sets how often the provider checks the client's connection.
func withPoll(d time.Duration) Option { return func(p *Provider) { p.poll = d } }

// Provider is an OpenFeature FeatureProvider backed by an sdk.Client.
type Provider struct {
	client     *sdk.Client
	staleAfter time.Duration
	poll       time.Duration
	meta       atomic.Pointer[metaCache]
	// stale mirrors status == of.StaleState, and live the client's live
	// connection, for the evaluation path (which takes no lock).
	stale atomic.Bool
	live  atomic.Bool

	mu     sync.Mutex
	status of.State
	events chan of.Event
	remove func()
	stop   chan struct{}
	done   chan struct{}
}

// metaCache holds the flag metadata of one state: the OpenFeature SDK copies
// metadata before handing it out, so one map per state serves every
// evaluation.
type metaCache struct {
	version uint64
	level   sdk.Level
	source  sdk.Source
	md      of.FlagMetadata
}

var (
	_ of.FeatureProvider = (*Provider)(nil)
	_ of.StateHandler    = (*Provider)(nil)
	_ of.EventHandler    = (*Provider)(nil)
)

// NewProvider returns a provider reading from client. The caller keeps
// ownership of the client: shutting the provider down does not close it.
func NewProvider(client *sdk.Client, opts ...Option) *Provider {
	p := &Provider{client: client, staleAfter: DefaultStaleAfter, poll: 250 * time.Millisecond,
		events: make(chan of.Event, 16), status: of.NotReadyState}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Metadata names the provider "brownout".
func (p *Provider) Metadata() of.Metadata { return of.Metadata{Name: "brownout"} }

// Hooks returns none.
func (p *Provider) Hooks() []of.Hook { return nil }

// Init starts forwarding the client's changes and connection status as
// events. The client serves a state from the start (defaults, state file or
// controller), so the provider is ready at once, unless the client has
// already stopped for good.
func (p *Provider) Init(of.EvaluationContext) error {
	p.live.Store(p.client.Stats().Connected)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.remove == nil {
		p.remove = p.client.OnChange(p.changed)
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go p.watch(p.stop, p.done)
	}
	p.status = of.ReadyState
	if err := p.client.Err(); err != nil {
		p.status = of.FatalState
		return &of.ProviderInitError{ErrorCode: of.ProviderFatalCode, Message: err.Error()}
	}
	return nil
}

// Shutdown stops forwarding changes. It leaves the client running.
func (p *Provider) Shutdown() {
	p.mu.Lock()
	remove, stop, done := p.remove, p.stop, p.done
	p.remove, p.stop, p.done = nil, nil, nil
	p.status = of.NotReadyState
	p.mu.Unlock()
	if remove != nil {
		remove()
		close(stop)
		<-done
	}
}

// Status returns the provider's status as it reports it through events:
// READY, STALE, FATAL, or NOT_READY before Init and after Shutdown.
func (p *Provider) Status() of.State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// EventChannel returns the provider's events.
func (p *Provider) EventChannel() <-chan of.Event { return p.events }

// watch follows the client's connection and turns it into status events.
func (p *Provider) watch(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(p.poll)
	defer t.Stop()
	for {
		p.check()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// check computes the status the client's connection calls for and emits
// the event of a change.
func (p *Provider) check() {
	want, msg := of.ReadyState, "brownout: connected"
	var code of.ErrorCode
	st := p.client.Stats()
	p.live.Store(st.Connected)
	if err := p.client.Err(); err != nil {
		want, msg, code = of.FatalState, err.Error(), of.ProviderFatalCode
	} else if !st.Connected && !st.UnreachableSince.IsZero() && time.Since(st.UnreachableSince) >= p.staleAfter {
		want, msg = of.StaleState, "brownout: controller unreachable since "+st.UnreachableSince.UTC().Format(time.RFC3339)
	}
	p.mu.Lock()
	if p.remove == nil || p.status == want {
		p.mu.Unlock()
		return
	}
	p.status = want
	p.stale.Store(want == of.StaleState)
	p.mu.Unlock()
	ev := of.Event{ProviderName: "brownout", ProviderEventDetails: of.ProviderEventDetails{Message: msg, ErrorCode: code}}
	switch want {
	case of.FatalState:
		ev.EventType = of.ProviderError
	case of.StaleState:
		ev.EventType = of.ProviderStale
	default:
		ev.EventType = of.ProviderReady
	}
	// Status events must not be lost behind configuration changes.
	select {
	case p.events <- ev:
	case <-time.After(time.Second):
	}
}

func (p *Provider) changed(old, new sdk.State) {
	p.live.Store(p.client.Stats().Connected)
	var changes []string
	for k, v := range new.Flags {
		if ov, ok := old.Flags[k]; !ok || ov != v {
			changes = append(changes, k)
		}
	}
	for k := range old.Flags {
		if _, ok := new.Flags[k]; !ok {
			changes = append(changes, k)
		}
	}
	if old.Level != new.Level {
		changes = append(changes, FlagLevel, FlagLevelName)
	}
	ev := of.Event{
		ProviderName: "brownout",
		EventType:    of.ProviderConfigChange,
		ProviderEventDetails: of.ProviderEventDetails{
			Message:     "brownout state changed",
			FlagChanges: changes,
			EventMetadata: map[string]any{
				MetaLevel: int(new.Level), MetaLevelName: new.Level.String(),
				MetaVersion: int64(new.Version), MetaSource: new.Source.String(),
			},
		},
	}
	// Change events are advisory; a consumer that falls behind misses some
	// rather than holding up the client's other callbacks.
	select {
	case p.events <- ev:
	default:
	}
}

// BooleanEvaluation resolves a Brownout flag.
func (p *Provider) BooleanEvaluation(_ context.Context, flag string, defaultValue bool, _ of.FlattenedContext) of.BoolResolutionDetail {
	st := p.client.State()
	v, ok := st.Flags[flag]
	if !ok {
		return of.BoolResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.failed(&st, flag, isLevelFlag(flag))}
	}
	variant := "off"
	if v {
		variant = "on"
	}
	return of.BoolResolutionDetail{
		Value: v,
		ProviderResolutionDetail: of.ProviderResolutionDetail{
			Reason:       p.reason(&st),
			Variant:      variant,
			FlagMetadata: p.metadata(&st),
		},
	}
}

// StringEvaluation resolves FlagLevelName, the level's name.
func (p *Provider) StringEvaluation(_ context.Context, flag string, defaultValue string, _ of.FlattenedContext) of.StringResolutionDetail {
	st := p.client.State()
	if flag != FlagLevelName {
		return of.StringResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.failed(&st, flag, p.known(&st, flag))}
	}
	name := st.Level.String()
	return of.StringResolutionDetail{Value: name, ProviderResolutionDetail: of.ProviderResolutionDetail{
		Reason: p.reason(&st), Variant: name, FlagMetadata: p.metadata(&st),
	}}
}

// IntEvaluation resolves FlagLevel, the level.
func (p *Provider) IntEvaluation(_ context.Context, flag string, defaultValue int64, _ of.FlattenedContext) of.IntResolutionDetail {
	st := p.client.State()
	if flag != FlagLevel {
		return of.IntResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.failed(&st, flag, p.known(&st, flag))}
	}
	return of.IntResolutionDetail{Value: int64(st.Level), ProviderResolutionDetail: of.ProviderResolutionDetail{
		Reason: p.reason(&st), Variant: st.Level.String(), FlagMetadata: p.metadata(&st),
	}}
}

// FloatEvaluation: Brownout has no float flags.
func (p *Provider) FloatEvaluation(_ context.Context, flag string, defaultValue float64, _ of.FlattenedContext) of.FloatResolutionDetail {
	st := p.client.State()
	return of.FloatResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.failed(&st, flag, p.known(&st, flag))}
}

// ObjectEvaluation: Brownout has no object flags.
func (p *Provider) ObjectEvaluation(_ context.Context, flag string, defaultValue any, _ of.FlattenedContext) of.InterfaceResolutionDetail {
	st := p.client.State()
	return of.InterfaceResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.failed(&st, flag, p.known(&st, flag))}
}

func isLevelFlag(flag string) bool { return flag == FlagLevel || flag == FlagLevelName }

// known reports whether flag exists under some type.
func (p *Provider) known(st *sdk.State, flag string) bool {
	_, ok := st.Flags[flag]
	return ok || isLevelFlag(flag)
}

// failed is the resolution of a flag that is unknown, or known under
// another type (wrongType).
func (p *Provider) failed(st *sdk.State, flag string, wrongType bool) of.ProviderResolutionDetail {
	err := of.NewFlagNotFoundResolutionError("brownout: unknown flag " + flag)
	if wrongType {
		err = of.NewTypeMismatchResolutionError("brownout: flag " + flag + " has another type")
	}
	return of.ProviderResolutionDetail{ResolutionError: err, Reason: of.ErrorReason, FlagMetadata: p.metadata(st)}
}

func (p *Provider) metadata(st *sdk.State) of.FlagMetadata {
	if m := p.meta.Load(); m != nil && m.version == st.Version && m.level == st.Level && m.source == st.Source {
		return m.md
	}
	m := &metaCache{version: st.Version, level: st.Level, source: st.Source, md: of.FlagMetadata{
		MetaLevel:     int(st.Level),
		MetaLevelName: st.Level.String(),
		MetaVersion:   int64(st.Version),
		MetaSource:    st.Source.String(),
	}}
	p.meta.Store(m)
	return m.md
}

// reason says, in OpenFeature's terms, how authoritative the state is (see
// the package doc).
func (p *Provider) reason(st *sdk.State) of.Reason {
	switch st.Source {
	case sdk.SourceStale:
		return staleReason
	case sdk.SourceFile:
		return of.CachedReason
	case sdk.SourceDefaults:
		return of.DefaultReason
	case sdk.SourceForced:
		return of.StaticReason
	}
	// SourceController: live, or held through an outage.
	if p.stale.Load() {
		return staleReason
	}
	if !p.live.Load() {
		return of.CachedReason
	}
	return of.StaticReason
}
