// Package openfeature is a Brownout provider for the OpenFeature Go SDK, so
// that code written against the OpenFeature API reads Brownout flags.
//
// Brownout flags are booleans; the provider resolves them from the client's
// current snapshot, without I/O. Every resolution carries the level, level
// name, state version and source in its flag metadata. String, number and
// object evaluations of a Brownout flag fail with TYPE_MISMATCH; flags
// Brownout does not know (neither the controller nor the client's defaults)
// fail with FLAG_NOT_FOUND, and the caller's default value is returned.
//
// It lives in its own module so that the core SDK does not depend on
// OpenFeature.
package openfeature

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/brownout-io/brownout/sdk"
	of "github.com/open-feature/go-sdk/openfeature"
)

// Metadata keys of each resolution.
const (
	MetaLevel     = "level"      // int
	MetaLevelName = "level_name" // string
	MetaVersion   = "version"    // uint64
	MetaSource    = "source"     // string, see sdk.Source
)

// Provider is an OpenFeature FeatureProvider backed by an sdk.Client. It
// also emits PROVIDER_CONFIGURATION_CHANGED events, naming the changed
// flags, whenever the client's state changes.
type Provider struct {
	client *sdk.Client
	meta   atomic.Pointer[metaCache]

	mu     sync.Mutex
	events chan of.Event
	remove func()
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
func NewProvider(client *sdk.Client) *Provider {
	return &Provider{client: client, events: make(chan of.Event, 16)}
}

// Metadata names the provider "brownout".
func (p *Provider) Metadata() of.Metadata { return of.Metadata{Name: "brownout"} }

// Hooks returns none.
func (p *Provider) Hooks() []of.Hook { return nil }

// Init starts forwarding the client's changes as events. The client serves
// a state from the start (defaults, state file or controller), so the
// provider is ready at once.
func (p *Provider) Init(of.EvaluationContext) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.remove == nil {
		p.remove = p.client.OnChange(p.changed)
	}
	return nil
}

// Shutdown stops forwarding changes. It leaves the client running.
func (p *Provider) Shutdown() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.remove != nil {
		p.remove()
		p.remove = nil
	}
}

// EventChannel returns the provider's events.
func (p *Provider) EventChannel() <-chan of.Event { return p.events }

func (p *Provider) changed(old, new sdk.State) {
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
	ev := of.Event{
		ProviderName: "brownout",
		EventType:    of.ProviderConfigChange,
		ProviderEventDetails: of.ProviderEventDetails{
			Message:     "brownout state changed",
			FlagChanges: changes,
			EventMetadata: map[string]any{
				MetaLevel: int(new.Level), MetaLevelName: new.Level.String(),
				MetaVersion: new.Version, MetaSource: new.Source.String(),
			},
		},
	}
	// Events are advisory; a consumer that falls behind misses some rather
	// than holding up the client's other callbacks.
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
		return of.BoolResolutionDetail{
			Value: defaultValue,
			ProviderResolutionDetail: of.ProviderResolutionDetail{
				ResolutionError: of.NewFlagNotFoundResolutionError("brownout: unknown flag " + flag),
				Reason:          of.ErrorReason,
				FlagMetadata:    p.metadata(&st),
			},
		}
	}
	variant := "off"
	if v {
		variant = "on"
	}
	return of.BoolResolutionDetail{
		Value: v,
		ProviderResolutionDetail: of.ProviderResolutionDetail{
			Reason:       reason(st.Source),
			Variant:      variant,
			FlagMetadata: p.metadata(&st),
		},
	}
}

// StringEvaluation: Brownout has no string flags.
func (p *Provider) StringEvaluation(_ context.Context, flag string, defaultValue string, _ of.FlattenedContext) of.StringResolutionDetail {
	return of.StringResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.notBool(flag)}
}

// FloatEvaluation: Brownout has no number flags.
func (p *Provider) FloatEvaluation(_ context.Context, flag string, defaultValue float64, _ of.FlattenedContext) of.FloatResolutionDetail {
	return of.FloatResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.notBool(flag)}
}

// IntEvaluation: Brownout has no number flags.
func (p *Provider) IntEvaluation(_ context.Context, flag string, defaultValue int64, _ of.FlattenedContext) of.IntResolutionDetail {
	return of.IntResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.notBool(flag)}
}

// ObjectEvaluation: Brownout has no object flags.
func (p *Provider) ObjectEvaluation(_ context.Context, flag string, defaultValue any, _ of.FlattenedContext) of.InterfaceResolutionDetail {
	return of.InterfaceResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.notBool(flag)}
}

func (p *Provider) notBool(flag string) of.ProviderResolutionDetail {
	st := p.client.State()
	err := of.NewFlagNotFoundResolutionError("brownout: unknown flag " + flag)
	if _, ok := st.Flags[flag]; ok {
		err = of.NewTypeMismatchResolutionError("brownout: flag " + flag + " is a boolean")
	}
	return of.ProviderResolutionDetail{ResolutionError: err, Reason: of.ErrorReason, FlagMetadata: p.metadata(&st)}
}

func (p *Provider) metadata(st *sdk.State) of.FlagMetadata {
	if m := p.meta.Load(); m != nil && m.version == st.Version && m.level == st.Level && m.source == st.Source {
		return m.md
	}
	m := &metaCache{version: st.Version, level: st.Level, source: st.Source, md: of.FlagMetadata{
		MetaLevel:     int(st.Level),
		MetaLevelName: st.Level.String(),
		MetaVersion:   st.Version,
		MetaSource:    st.Source.String(),
	}}
	p.meta.Store(m)
	return m.md
}

// reason maps where the state comes from onto OpenFeature's reasons.
func reason(s sdk.Source) of.Reason {
	switch s {
	case sdk.SourceController, sdk.SourceForced:
		return of.StaticReason
	case sdk.SourceFile, sdk.SourceStale:
		return of.CachedReason
	default:
		return of.DefaultReason
	}
}
