package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/featureflags"
	"github.com/brownout-io/brownout/internal/levels"
)

// Config tables hold one JSON document per scope; globalScope is the row of
// the global default set.
const (
	tableThresholds = "thresholds"
	tableFlags      = "flag_sets"
	globalScope     = brownout.GlobalScope
)

// GlobalThresholds returns the stored global threshold set; ok is false
// when none is stored and the caller should use levels.Default.
func (db *DB) GlobalThresholds(ctx context.Context) (levels.Thresholds, bool, error) {
	var t levels.Thresholds
	ok, err := db.getConfig(ctx, tableThresholds, globalScope, &t)
	if err != nil {
		return levels.Thresholds{}, false, fmt.Errorf("global thresholds: %w", err)
	}
	return t, ok, nil
}

// PutGlobalThresholds stores t as the global threshold set and appends a,
// in one transaction.
func (db *DB) PutGlobalThresholds(ctx context.Context, t levels.Thresholds, a brownout.AuditEntry) error {
	return db.putConfig(ctx, "put_global_thresholds", tableThresholds, globalScope, t, a)
}

// ServiceThresholds returns service's own threshold set; ok is false when
// it has none (the global set applies).
func (db *DB) ServiceThresholds(ctx context.Context, service string) (levels.Thresholds, bool, error) {
	if err := brownout.CheckName("service", service); err != nil {
		return levels.Thresholds{}, false, err
	}
	var t levels.Thresholds
	ok, err := db.getConfig(ctx, tableThresholds, service, &t)
	if err != nil {
		return levels.Thresholds{}, false, fmt.Errorf("service thresholds: %w", err)
	}
	return t, ok, nil
}

// AllServiceThresholds returns every service's own threshold set, by
// service name.
func (db *DB) AllServiceThresholds(ctx context.Context) (map[string]levels.Thresholds, error) {
	out := map[string]levels.Thresholds{}
	err := db.allConfig(ctx, tableThresholds, func(scope string, body []byte) error {
		var t levels.Thresholds
		if err := json.Unmarshal(body, &t); err != nil {
			return err
		}
		out[scope] = t
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("all service thresholds: %w", err)
	}
	return out, nil
}

// PutServiceThresholds stores service's own threshold set and appends a, in
// one transaction.
func (db *DB) PutServiceThresholds(ctx context.Context, service string, t levels.Thresholds, a brownout.AuditEntry) error {
	if err := brownout.CheckName("service", service); err != nil {
		return err
	}
	return db.putConfig(ctx, "put_service_thresholds", tableThresholds, service, t, a)
}

// DeleteServiceThresholds removes service's own threshold set, so that the
// global set applies again, and appends a in the same transaction. existed
// is false (and nothing is audited) when the service had no set.
func (db *DB) DeleteServiceThresholds(ctx context.Context, service string, a brownout.AuditEntry) (bool, error) {
	if err := brownout.CheckName("service", service); err != nil {
		return false, err
	}
	return db.deleteConfig(ctx, "delete_service_thresholds", tableThresholds, service, a)
}

// GlobalFlags returns the stored global flag set; ok is false when none is
// stored and the caller should use featureflags.Default.
func (db *DB) GlobalFlags(ctx context.Context) (featureflags.Set, bool, error) {
	var s featureflags.Set
	ok, err := db.getConfig(ctx, tableFlags, globalScope, &s)
	if err != nil {
		return featureflags.Set{}, false, fmt.Errorf("global flags: %w", err)
	}
	return s, ok, nil
}

// PutGlobalFlags stores s as the global flag set and appends a, in one
// transaction.
func (db *DB) PutGlobalFlags(ctx context.Context, s featureflags.Set, a brownout.AuditEntry) error {
	return db.putConfig(ctx, "put_global_flags", tableFlags, globalScope, s, a)
}

// ServiceFlags returns service's own flag set; ok is false when it has none.
func (db *DB) ServiceFlags(ctx context.Context, service string) (featureflags.Set, bool, error) {
	if err := brownout.CheckName("service", service); err != nil {
		return featureflags.Set{}, false, err
	}
	var s featureflags.Set
	ok, err := db.getConfig(ctx, tableFlags, service, &s)
	if err != nil {
		return featureflags.Set{}, false, fmt.Errorf("service flags: %w", err)
	}
	return s, ok, nil
}

// AllServiceFlags returns every service's own flag set, by service name.
func (db *DB) AllServiceFlags(ctx context.Context) (map[string]featureflags.Set, error) {
	out := map[string]featureflags.Set{}
	err := db.allConfig(ctx, tableFlags, func(scope string, body []byte) error {
		var s featureflags.Set
		if err := json.Unmarshal(body, &s); err != nil {
			return err
		}
		out[scope] = s
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("all service flags: %w", err)
	}
	return out, nil
}

// PutServiceFlags stores service's own flag set and appends a, in one
// transaction.
func (db *DB) PutServiceFlags(ctx context.Context, service string, s featureflags.Set, a brownout.AuditEntry) error {
	if err := brownout.CheckName("service", service); err != nil {
		return err
	}
	return db.putConfig(ctx, "put_service_flags", tableFlags, service, s, a)
}

// DeleteServiceFlags removes service's own flag set and appends a in the
// same transaction. existed is false (and nothing is audited) when the
// service had no set.
func (db *DB) DeleteServiceFlags(ctx context.Context, service string, a brownout.AuditEntry) (bool, error) {
	if err := brownout.CheckName("service", service); err != nil {
		return false, err
	}
	return db.deleteConfig(ctx, "delete_service_flags", tableFlags, service, a)
}

// table is one of the constants above, never user input.
func (db *DB) getConfig(ctx context.Context, table, scope string, v any) (bool, error) {
	var body string
	err := db.pool.QueryRow(ctx, `SELECT body FROM `+table+` WHERE scope = $1`, scope).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, translate(err)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		return false, fmt.Errorf("decode %s %q: %w", table, scope, err)
	}
	return true, nil
}

func (db *DB) allConfig(ctx context.Context, table string, fn func(scope string, body []byte) error) error {
	rows, err := db.pool.Query(ctx, `SELECT scope, body FROM `+table+` WHERE scope <> $1 ORDER BY scope`, globalScope)
	if err != nil {
		return translate(err)
	}
	defer rows.Close()
	for rows.Next() {
		var scope, body string
		if err := rows.Scan(&scope, &body); err != nil {
			return translate(err)
		}
		if err := fn(scope, []byte(body)); err != nil {
			return fmt.Errorf("decode %s %q: %w", table, scope, err)
		}
	}
	return translate(rows.Err())
}

func (db *DB) putConfig(ctx context.Context, op, table, scope string, v any, a brownout.AuditEntry) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", op, err)
	}
	at := a.At
	if at.IsZero() {
		at = time.Now()
	}
	return db.inTx(ctx, op, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx,
			`INSERT INTO `+table+` (scope, body, updated_at) VALUES ($1, $2, $3)
			 ON CONFLICT (scope) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at`,
			scope, string(body), at.UnixNano())
		if err != nil {
			return err
		}
		if err := insertAudit(ctx, tx, a, scope); err != nil {
			return err
		}
		return db.notify(ctx, tx, brownout.Change{Kind: brownout.ChangeConfig, Service: serviceScope(scope)})
	})
}

func (db *DB) deleteConfig(ctx context.Context, op, table, scope string, a brownout.AuditEntry) (bool, error) {
	var existed bool
	err := db.inTx(ctx, op, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE scope = $1`, scope)
		if err != nil {
			return err
		}
		existed = tag.RowsAffected() > 0
		if !existed {
			return nil
		}
		if err := insertAudit(ctx, tx, a, scope); err != nil {
			return err
		}
		return db.notify(ctx, tx, brownout.Change{Kind: brownout.ChangeConfig, Service: serviceScope(scope)})
	})
	return existed, err
}

// serviceScope is the service a config scope is about, "" for the global
// set.
func serviceScope(scope string) string {
	if scope == globalScope {
		return ""
	}
	return scope
}
