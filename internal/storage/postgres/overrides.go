package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

const overrideColumns = `id, service, level, reason, actor, emergency, created_at, expires_at, cleared_at, cleared_by`

func scanOverride(sc pgx.Row) (brownout.Override, error) {
	var o brownout.Override
	var created int64
	var expires, cleared *int64
	err := sc.Scan(&o.ID, &o.Service, &o.Level, &o.Reason, &o.Actor, &o.Emergency, &created, &expires, &cleared, &o.ClearedBy)
	if err != nil {
		return brownout.Override{}, err
	}
	o.CreatedAt = fromNano(created)
	o.ExpiresAt = fromNullNano(expires)
	o.ClearedAt = fromNullNano(cleared)
	return o, nil
}

// notFound turns pgx.ErrNoRows into an ENOTFOUND *brownout.Error with the
// given message and translates other errors.
func notFound(err error, format string, args ...any) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return brownout.Errorf(brownout.ENOTFOUND, format, args...)
	}
	return translate(err)
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
	o, err := scanOverride(db.pool.QueryRow(ctx, `SELECT `+overrideColumns+` FROM overrides WHERE id = $1`, id))
	if err != nil {
		return brownout.Override{}, fmt.Errorf("get override: %w", notFound(err, "override %q not found", id))
	}
	return o, nil
}

// ActiveOverrides returns the overrides that count at now (not cleared, and
// without expiry or expiring after now), oldest first by created_at, id.
func (db *DB) ActiveOverrides(ctx context.Context, now time.Time) ([]brownout.Override, error) {
	rows, err := db.pool.Query(ctx, activeOverrides, now.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("active overrides: %w", translate(err))
	}
	return collectOverrides(rows)
}

const activeOverrides = `SELECT ` + overrideColumns + ` FROM overrides
	WHERE cleared_at IS NULL AND (expires_at IS NULL OR expires_at > $1)
	ORDER BY created_at, id`

func collectOverrides(rows pgx.Rows) ([]brownout.Override, error) {
	defer rows.Close()
	var out []brownout.Override
	for rows.Next() {
		o, err := scanOverride(rows)
		if err != nil {
			return nil, fmt.Errorf("active overrides: %w", translate(err))
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("active overrides: %w", translate(err))
	}
	return out, nil
}

// LoadOverridesAndStates returns ActiveOverrides(now) and
// LoadServiceStates(names) in one round trip, the overrides read first:
// each statement of the batch reads what was committed when it started, so
// the states are at least as new as the overrides. A replica told of an
// override and the states it changed reads them with this.
func (db *DB) LoadOverridesAndStates(ctx context.Context, now time.Time, names []string) ([]brownout.Override, []brownout.ServiceState, error) {
	b := &pgx.Batch{}
	var ovs []brownout.Override
	var sts []brownout.ServiceState
	b.Queue(activeOverrides, now.UnixNano()).Query(func(rows pgx.Rows) error {
		var err error
		ovs, err = collectOverrides(rows)
		return err
	})
	if len(names) > 0 {
		b.Queue(loadStates, names).Query(func(rows pgx.Rows) error {
			var err error
			sts, err = collectStates(rows)
			return err
		})
	}
	if err := db.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, fmt.Errorf("load overrides and states: %w", translate(err))
	}
	return ovs, sts, nil
}

// CreateOverrideWithStates stores o and a together with the new states of
// the services the override changes, in one transaction: the override and
// the versions that publish it are durable together. States are saved as
// SaveServiceStates saves them (Version 0 allocates, a fence in ctx is
// checked when there are states). The override and every state are
// announced on the change feed.
func (db *DB) CreateOverrideWithStates(ctx context.Context, o brownout.Override, a brownout.AuditEntry, states []brownout.StateChange) error {
	if o.ID == "" {
		return brownout.FieldErrorf(brownout.EBADREQUEST, "id", "must not be empty")
	}
	if err := checkStates(states); err != nil {
		return err
	}
	// Everything up to the states' versions goes with the BEGIN: an
	// override made on a follower costs two round trips.
	b := txBatch()
	b.Queue(`INSERT INTO overrides (`+overrideColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		o.ID, o.Service, o.Level, o.Reason, o.Actor, o.Emergency, unixNano(o.CreatedAt),
		nullNano(o.ExpiresAt), nullNano(o.ClearedAt), o.ClearedBy)
	queueAudit(b, a, o.Service)
	// More: the states it changed are announced right after it, so that a
	// receiver reads the overrides and those states at once.
	if err := db.queueNotify(b, brownout.Change{Kind: brownout.ChangeOverride, ID: o.ID, Service: o.Service, More: len(states) > 0}); err != nil {
		return err
	}
	if o.Emergency {
		if err := queueEvents(b, []brownout.Event{storage.EmergencyEvent(o, true, o.CreatedAt)}); err != nil {
			return err
		}
	}
	save := db.queueStates(ctx, b, states)
	var versions []uint64
	err := db.inTxBatch(ctx, "create_override", b, func(tx pgx.Tx) error {
		var err error
		versions, err = save.finish(ctx, tx)
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
	if err := checkStates(states); err != nil {
		return brownout.Override{}, err
	}
	var o brownout.Override
	var versions []uint64
	b := txBatch()
	// FOR UPDATE: two replicas clearing the same override at once
	// serialise here, and the second finds it cleared.
	b.Queue(`SELECT `+overrideColumns+` FROM overrides WHERE id = $1 FOR UPDATE`, id).QueryRow(func(row pgx.Row) error {
		var err error
		if o, err = scanOverride(row); err != nil {
			return notFound(err, "override %q not found", id)
		}
		return nil
	})
	err := db.inTxBatch(ctx, "clear_override", b, func(tx pgx.Tx) error {
		if o.ClearedAt != nil {
			return brownout.Errorf(brownout.ECONFLICT, "override %q is already cleared", id)
		}
		if !o.Active(at) {
			return brownout.Errorf(brownout.ECONFLICT, "override %q has expired", id)
		}
		cleared := at.UTC()
		o.ClearedAt, o.ClearedBy = &cleared, by
		// The clearing and the states' versions in one round trip.
		b := &pgx.Batch{}
		b.Queue(`UPDATE overrides SET cleared_at = $1, cleared_by = $2 WHERE id = $3`, cleared.UnixNano(), by, id)
		queueAudit(b, a, o.Service)
		if err := db.queueNotify(b, brownout.Change{Kind: brownout.ChangeOverride, ID: id, Service: o.Service, More: len(states) > 0}); err != nil {
			return err
		}
		if o.Emergency {
			if err := queueEvents(b, []brownout.Event{storage.EmergencyEvent(o, false, cleared)}); err != nil {
				return err
			}
		}
		save := db.queueStates(ctx, b, states)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		var err error
		versions, err = save.finish(ctx, tx)
		return err
	})
	if err != nil {
		return brownout.Override{}, err
	}
	storage.SetVersions(states, versions)
	return o, nil
}
