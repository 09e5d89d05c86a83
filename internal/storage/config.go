package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/featureflags"
	"github.com/brownout-io/brownout/internal/levels"
)

// The configuration tables hold one JSON document per scope: a service's
// name, or brownout.GlobalScope for the global set.
const (
	TableThresholds = "thresholds"
	TableFlags      = "flag_sets"
)

// ConfigRows is the part of the configuration methods that differs by SQL
// dialect: the rows of a configuration table. table is TableThresholds or
// TableFlags, never user input.
type ConfigRows interface {
	// ConfigRow returns scope's body; ok is false when it has none.
	ConfigRow(ctx context.Context, table, scope string) (body []byte, ok bool, err error)
	// ServiceConfigRows calls fn with every scope but the global one, by
	// scope, and returns fn's first error.
	ServiceConfigRows(ctx context.Context, table string, fn func(scope string, body []byte) error) error
	// PutConfigRow stores scope's body, updated at at, and appends a, in
	// one transaction named op.
	PutConfigRow(ctx context.Context, op, table, scope string, body []byte, at time.Time, a brownout.AuditEntry) error
	// DeleteConfigRow removes scope's row and, when there was one, appends
	// a, in one transaction named op.
	DeleteConfigRow(ctx context.Context, op, table, scope string, a brownout.AuditEntry) (existed bool, err error)
}

// Config is a store's threshold and flag set methods over its ConfigRows;
// each store embeds one.
type Config struct{ Rows ConfigRows }

// GlobalThresholds returns the stored global threshold set; ok is false
// when none is stored and the caller should use levels.Default.
func (c Config) GlobalThresholds(ctx context.Context) (levels.Thresholds, bool, error) {
	t, ok, err := getConfig[levels.Thresholds](ctx, c.Rows, TableThresholds, brownout.GlobalScope)
	if err != nil {
		return levels.Thresholds{}, false, fmt.Errorf("global thresholds: %w", err)
	}
	return t, ok, nil
}

// PutGlobalThresholds stores t as the global threshold set and appends a,
// in one transaction.
func (c Config) PutGlobalThresholds(ctx context.Context, t levels.Thresholds, a brownout.AuditEntry) error {
	return putConfig(ctx, c.Rows, "put_global_thresholds", TableThresholds, brownout.GlobalScope, t, a)
}

// ServiceThresholds returns service's own threshold set; ok is false when
// it has none (the global set applies).
func (c Config) ServiceThresholds(ctx context.Context, service string) (levels.Thresholds, bool, error) {
	if err := brownout.CheckName("service", service); err != nil {
		return levels.Thresholds{}, false, err
	}
	t, ok, err := getConfig[levels.Thresholds](ctx, c.Rows, TableThresholds, service)
	if err != nil {
		return levels.Thresholds{}, false, fmt.Errorf("service thresholds: %w", err)
	}
	return t, ok, nil
}

// AllServiceThresholds returns every service's own threshold set, by
// service name.
func (c Config) AllServiceThresholds(ctx context.Context) (map[string]levels.Thresholds, error) {
	out, err := allConfig[levels.Thresholds](ctx, c.Rows, TableThresholds)
	if err != nil {
		return nil, fmt.Errorf("all service thresholds: %w", err)
	}
	return out, nil
}

// PutServiceThresholds stores service's own threshold set and appends a, in
// one transaction.
func (c Config) PutServiceThresholds(ctx context.Context, service string, t levels.Thresholds, a brownout.AuditEntry) error {
	if err := brownout.CheckName("service", service); err != nil {
		return err
	}
	return putConfig(ctx, c.Rows, "put_service_thresholds", TableThresholds, service, t, a)
}

// DeleteServiceThresholds removes service's own threshold set, so that the
// global set applies again, and appends a in the same transaction. existed
// is false (and nothing is audited) when the service had no set.
func (c Config) DeleteServiceThresholds(ctx context.Context, service string, a brownout.AuditEntry) (bool, error) {
	if err := brownout.CheckName("service", service); err != nil {
		return false, err
	}
	return c.Rows.DeleteConfigRow(ctx, "delete_service_thresholds", TableThresholds, service, a)
}

// GlobalFlags returns the stored global flag set; ok is false when none is
// stored and the caller should use featureflags.Default.
func (c Config) GlobalFlags(ctx context.Context) (featureflags.Set, bool, error) {
	s, ok, err := getConfig[featureflags.Set](ctx, c.Rows, TableFlags, brownout.GlobalScope)
	if err != nil {
		return featureflags.Set{}, false, fmt.Errorf("global flags: %w", err)
	}
	return s, ok, nil
}

// PutGlobalFlags stores s as the global flag set and appends a, in one
// transaction.
func (c Config) PutGlobalFlags(ctx context.Context, s featureflags.Set, a brownout.AuditEntry) error {
	return putConfig(ctx, c.Rows, "put_global_flags", TableFlags, brownout.GlobalScope, s, a)
}

// ServiceFlags returns service's own flag set; ok is false when it has none.
func (c Config) ServiceFlags(ctx context.Context, service string) (featureflags.Set, bool, error) {
	if err := brownout.CheckName("service", service); err != nil {
		return featureflags.Set{}, false, err
	}
	s, ok, err := getConfig[featureflags.Set](ctx, c.Rows, TableFlags, service)
	if err != nil {
		return featureflags.Set{}, false, fmt.Errorf("service flags: %w", err)
	}
	return s, ok, nil
}

// AllServiceFlags returns every service's own flag set, by service name.
func (c Config) AllServiceFlags(ctx context.Context) (map[string]featureflags.Set, error) {
	out, err := allConfig[featureflags.Set](ctx, c.Rows, TableFlags)
	if err != nil {
		return nil, fmt.Errorf("all service flags: %w", err)
	}
	return out, nil
}

// PutServiceFlags stores service's own flag set and appends a, in one
// transaction.
func (c Config) PutServiceFlags(ctx context.Context, service string, s featureflags.Set, a brownout.AuditEntry) error {
	if err := brownout.CheckName("service", service); err != nil {
		return err
	}
	return putConfig(ctx, c.Rows, "put_service_flags", TableFlags, service, s, a)
}

// DeleteServiceFlags removes service's own flag set and appends a in the
// same transaction. existed is false (and nothing is audited) when the
// service had no set.
func (c Config) DeleteServiceFlags(ctx context.Context, service string, a brownout.AuditEntry) (bool, error) {
	if err := brownout.CheckName("service", service); err != nil {
		return false, err
	}
	return c.Rows.DeleteConfigRow(ctx, "delete_service_flags", TableFlags, service, a)
}

func getConfig[T any](ctx context.Context, rows ConfigRows, table, scope string) (T, bool, error) {
	var v T
	body, ok, err := rows.ConfigRow(ctx, table, scope)
	if err != nil || !ok {
		return v, false, err
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return v, false, fmt.Errorf("decode %s %q: %w", table, scope, err)
	}
	return v, true, nil
}

func allConfig[T any](ctx context.Context, rows ConfigRows, table string) (map[string]T, error) {
	out := map[string]T{}
	err := rows.ServiceConfigRows(ctx, table, func(scope string, body []byte) error {
		var v T
		if err := json.Unmarshal(body, &v); err != nil {
			return fmt.Errorf("decode %s %q: %w", table, scope, err)
		}
		out[scope] = v
		return nil
	})
	return out, err
}

func putConfig(ctx context.Context, rows ConfigRows, op, table, scope string, v any, a brownout.AuditEntry) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", op, err)
	}
	at := a.At
	if at.IsZero() {
		at = time.Now()
	}
	return rows.PutConfigRow(ctx, op, table, scope, body, at, a)
}
