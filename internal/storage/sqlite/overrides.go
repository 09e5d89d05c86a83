package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

const overrideColumns = `id, service, level, reason, actor, emergency, created_at, expires_at, cleared_at, cleared_by`

func scanOverride(sc interface{ Scan(...any) error }) (brownout.Override, error) {
	var o brownout.Override
	var created int64
	var expires, cleared sql.NullInt64
	err := sc.Scan(&o.ID, &o.Service, &o.Level, &o.Reason, &o.Actor, &o.Emergency, &created, &expires, &cleared, &o.ClearedBy)
	if err != nil {
		return brownout.Override{}, err
	}
	o.CreatedAt = fromNano(created)
	o.ExpiresAt = fromNullNano(expires)
	o.ClearedAt = fromNullNano(cleared)
	return o, nil
}

// CreateOverride stores o (its ID chosen by the caller) and appends a, in
// one transaction. A duplicate ID is ECONFLICT.
func (db *DB) CreateOverride(ctx context.Context, o brownout.Override, a brownout.AuditEntry) error {
	return db.CreateOverrideWithStates(ctx, o, a, nil)
}

// ClearOverride marks override id cleared at at by by, and appends a, in
// one transaction, and returns the cleared override. An unknown id is
// ENOTFOUND; an override already cleared, or expired at at, is ECONFLICT.
func (db *DB) ClearOverride(ctx context.Context, id, by string, at time.Time, a brownout.AuditEntry) (brownout.Override, error) {
	return db.ClearOverrideWithStates(ctx, id, by, at, a, nil)
}

// GetOverride returns override id, active or not; ENOTFOUND when unknown.
func (db *DB) GetOverride(ctx context.Context, id string) (brownout.Override, error) {
	o, err := scanOverride(db.read.QueryRowContext(ctx, `SELECT `+overrideColumns+` FROM overrides WHERE id = ?`, id))
	if err != nil {
		return brownout.Override{}, fmt.Errorf("get override: %w", notFound(err, "override %q not found", id))
	}
	return o, nil
}

// ActiveOverrides returns the overrides that count at now (not cleared, and
// without expiry or expiring after now), oldest first by created_at, id.
func (db *DB) ActiveOverrides(ctx context.Context, now time.Time) ([]brownout.Override, error) {
	rows, err := db.read.QueryContext(ctx,
		`SELECT `+overrideColumns+` FROM overrides
		 WHERE cleared_at IS NULL AND (expires_at IS NULL OR expires_at > ?)
		 ORDER BY created_at, id`, now.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("active overrides: %w", err)
	}
	defer rows.Close()
	var out []brownout.Override
	for rows.Next() {
		o, err := scanOverride(rows)
		if err != nil {
			return nil, fmt.Errorf("active overrides: %w", err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("active overrides: %w", err)
	}
	return out, nil
}

// notFound turns sql.ErrNoRows into an ENOTFOUND *brownout.Error with the
// given message and passes other errors through.
func notFound(err error, format string, args ...any) error {
	if err == sql.ErrNoRows {
		return brownout.Errorf(brownout.ENOTFOUND, format, args...)
	}
	return err
}

// CreateOverrideWithStates stores o and a together with the new states of
// the services the override changes, in one transaction (one fsync): the
// override and the versions that publish it are durable together. States
// are saved as SaveServiceStates saves them (Version 0 allocates).
func (db *DB) CreateOverrideWithStates(ctx context.Context, o brownout.Override, a brownout.AuditEntry, states []brownout.StateChange) error {
	if o.ID == "" {
		return brownout.FieldErrorf(brownout.EBADREQUEST, "id", "must not be empty")
	}
	var versions []uint64
	err := db.inTx(ctx, "create_override", func(tx *wtx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO overrides (`+overrideColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			o.ID, o.Service, o.Level, o.Reason, o.Actor, o.Emergency, unixNano(o.CreatedAt),
			nullNano(o.ExpiresAt), nullNano(o.ClearedAt), o.ClearedBy)
		if err != nil {
			return err
		}
		if err := insertAudit(ctx, tx, a, o.Service); err != nil {
			return err
		}
		if o.Emergency {
			if err := insertEvents(ctx, tx, []brownout.Event{storage.EmergencyEvent(o, true, o.CreatedAt)}); err != nil {
				return err
			}
		}
		versions, err = saveStates(ctx, tx, states)
		return err
	})
	if err != nil {
		return err
	}
	storage.SetVersions(states, versions)
	return nil
}

// ClearOverrideWithStates is ClearOverride together with the new states of
// the services the clearing changes, in one transaction.
func (db *DB) ClearOverrideWithStates(ctx context.Context, id, by string, at time.Time, a brownout.AuditEntry, states []brownout.StateChange) (brownout.Override, error) {
	var o brownout.Override
	var versions []uint64
	err := db.inTx(ctx, "clear_override", func(tx *wtx) error {
		var err error
		o, err = scanOverride(tx.QueryRowContext(ctx, `SELECT `+overrideColumns+` FROM overrides WHERE id = ?`, id))
		if err != nil {
			return notFound(err, "override %q not found", id)
		}
		if o.ClearedAt != nil {
			return brownout.Errorf(brownout.ECONFLICT, "override %q is already cleared", id)
		}
		if !o.Active(at) {
			return brownout.Errorf(brownout.ECONFLICT, "override %q has expired", id)
		}
		cleared := at.UTC()
		o.ClearedAt, o.ClearedBy = &cleared, by
		if _, err := tx.ExecContext(ctx, `UPDATE overrides SET cleared_at = ?, cleared_by = ? WHERE id = ?`,
			cleared.UnixNano(), by, id); err != nil {
			return err
		}
		if err := insertAudit(ctx, tx, a, o.Service); err != nil {
			return err
		}
		if o.Emergency {
			if err := insertEvents(ctx, tx, []brownout.Event{storage.EmergencyEvent(o, false, cleared)}); err != nil {
				return err
			}
		}
		versions, err = saveStates(ctx, tx, states)
		return err
	})
	if err != nil {
		return brownout.Override{}, err
	}
	storage.SetVersions(states, versions)
	return o, nil
}
