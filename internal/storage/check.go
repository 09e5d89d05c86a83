package storage

import (
	"context"
	"log/slog"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/featureflags"
	"github.com/brownout-io/brownout/internal/levels"
)

// contract lists the method set the controller was written against (the
// former CONTRACT.md). The assertion below breaks the build here, not in
// the controller, if a signature drifts. Consumers declare their own,
// smaller interfaces and assert them where they are wired, e.g.
//
//	var _ controller.Store = (*storage.DB)(nil)
type contract interface {
	Close() error
	Ping(ctx context.Context) error
	SetObserver(fn Observer)

	GlobalThresholds(ctx context.Context) (levels.Thresholds, bool, error)
	PutGlobalThresholds(ctx context.Context, t levels.Thresholds, a brownout.AuditEntry) error
	ServiceThresholds(ctx context.Context, service string) (levels.Thresholds, bool, error)
	AllServiceThresholds(ctx context.Context) (map[string]levels.Thresholds, error)
	PutServiceThresholds(ctx context.Context, service string, t levels.Thresholds, a brownout.AuditEntry) error
	DeleteServiceThresholds(ctx context.Context, service string, a brownout.AuditEntry) (bool, error)
	GlobalFlags(ctx context.Context) (featureflags.Set, bool, error)
	PutGlobalFlags(ctx context.Context, s featureflags.Set, a brownout.AuditEntry) error
	ServiceFlags(ctx context.Context, service string) (featureflags.Set, bool, error)
	AllServiceFlags(ctx context.Context) (map[string]featureflags.Set, error)
	PutServiceFlags(ctx context.Context, service string, s featureflags.Set, a brownout.AuditEntry) error
	DeleteServiceFlags(ctx context.Context, service string, a brownout.AuditEntry) (bool, error)

	LoadServices(ctx context.Context) ([]brownout.ServiceState, error)
	SaveServiceState(ctx context.Context, st brownout.ServiceState, changes []brownout.LevelChange) error

	CreateOverride(ctx context.Context, o brownout.Override, a brownout.AuditEntry) error
	ClearOverride(ctx context.Context, id, by string, at time.Time, a brownout.AuditEntry) (brownout.Override, error)
	GetOverride(ctx context.Context, id string) (brownout.Override, error)
	ActiveOverrides(ctx context.Context, now time.Time) ([]brownout.Override, error)

	CreateToken(ctx context.Context, t brownout.Token, a brownout.AuditEntry) error
	ListTokens(ctx context.Context) ([]brownout.Token, error)
	ActiveTokens(ctx context.Context) ([]brownout.Token, error)
	RevokeToken(ctx context.Context, id string, at time.Time, a brownout.AuditEntry) (brownout.Token, error)

	AppendAudit(ctx context.Context, a brownout.AuditEntry) error
	ListAudit(ctx context.Context, f brownout.Filter) (brownout.Page[brownout.AuditEntry], error)
	ListLevelChanges(ctx context.Context, f brownout.Filter) (brownout.Page[brownout.LevelChange], error)

	WriteSamples(ctx context.Context, batch []brownout.Sample) error
	QuerySamples(ctx context.Context, service string, from, to time.Time, step time.Duration) ([]brownout.SamplePoint, error)
	Rollup(ctx context.Context, upTo time.Time) error
	Prune(ctx context.Context, now time.Time, raw, rollup time.Duration, batch int) (int, error)
}

var (
	_ contract = (*DB)(nil)

	_ func(context.Context, string, *slog.Logger) (*DB, error)                              = Open
	_ func(*DB, time.Duration, int, *slog.Logger) *SampleWriter                             = NewSampleWriter
	_ func(context.Context, *DB, time.Duration, time.Duration, time.Duration, *slog.Logger) = RunRetention
)

// The SampleWriter's method set, as above.
var _ interface {
	Enqueue(s brownout.Sample) bool
	Dropped() uint64
	Close(ctx context.Context) error
} = (*SampleWriter)(nil)
