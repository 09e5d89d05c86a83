package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

// LoadServices returns every persisted service state, by name.
func (db *DB) LoadServices(ctx context.Context) ([]brownout.ServiceState, error) {
	rows, err := db.read.QueryContext(ctx,
		`SELECT name, version, level, computed_level, override_id, calm_since, changed_at, cause, created_at, retired_at
		 FROM services ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("load services: %w", err)
	}
	defer rows.Close()
	var out []brownout.ServiceState
	for rows.Next() {
		var st brownout.ServiceState
		var version, calm, changed, created, retired int64
		if err := rows.Scan(&st.Name, &version, &st.Level, &st.ComputedLevel, &st.OverrideID,
			&calm, &changed, &st.Cause, &created, &retired); err != nil {
			return nil, fmt.Errorf("load services: %w", err)
		}
		st.Version = uint64(version)
		st.CalmSince, st.ChangedAt, st.CreatedAt, st.RetiredAt = fromNano(calm), fromNano(changed), fromNano(created), fromNano(retired)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load services: %w", err)
	}
	return out, nil
}

// SaveServiceState upserts st and appends changes (which may be empty) in
// one transaction. The stored version never goes back: when the stored
// version is >= st.Version it stores nothing and returns an error wrapping
// ErrStaleVersion.
func (db *DB) SaveServiceState(ctx context.Context, st brownout.ServiceState, changes []brownout.LevelChange) error {
	return db.SaveServiceStates(ctx, []brownout.StateChange{{State: st, Changes: changes}})
}

// SaveServiceStates saves several services' states and level changes in
// one transaction (one fsync), all or nothing, so that a change that
// touches every service — a global override — costs one commit. A state
// with Version 0 is given the next version in the transaction (the stored
// one plus one, 1 for a new service), written back into batch once
// committed, together with every one of its Changes whose Version is 0.
// Any other version must be above the stored one, else nothing is stored
// and the error wraps storage.ErrStaleVersion.
func (db *DB) SaveServiceStates(ctx context.Context, batch []brownout.StateChange) error {
	for _, sc := range batch {
		if sc.State.Version > math.MaxInt64 {
			return fmt.Errorf("save service state: version %d out of range", sc.State.Version)
		}
		if sc.State.Name == "" {
			return brownout.FieldErrorf(brownout.EBADREQUEST, "service", "must not be empty")
		}
	}
	if len(batch) == 0 {
		return nil
	}
	var versions []uint64
	err := db.inTx(ctx, "save_service_state", func(tx *wtx) error {
		var err error
		versions, err = saveStates(ctx, tx, batch)
		return err
	})
	if err != nil {
		return err
	}
	storage.SetVersions(batch, versions)
	return nil
}

// saveStates saves batch within tx and returns the version of each state.
func saveStates(ctx context.Context, tx *wtx, batch []brownout.StateChange) ([]uint64, error) {
	versions := make([]uint64, len(batch))
	var evs []brownout.Event
	for i, sc := range batch {
		if sc.State.Version > math.MaxInt64 {
			return nil, fmt.Errorf("save service state: version %d out of range", sc.State.Version)
		}
		v, err := saveState(ctx, tx, sc.State, sc.Changes)
		if err != nil {
			return nil, err
		}
		versions[i] = v
		st := sc.State
		st.Version = v
		evs = append(evs, storage.LevelEvents(st, sc.Changes)...)
	}
	// The level changes' notifications, in the same transaction.
	if err := insertEvents(ctx, tx, evs); err != nil {
		return nil, err
	}
	return versions, nil
}

func saveState(ctx context.Context, tx *wtx, st brownout.ServiceState, changes []brownout.LevelChange) (uint64, error) {
	var stored int64
	err := tx.QueryRowContext(ctx, `SELECT version FROM services WHERE name = ?`, st.Name).Scan(&stored)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return 0, err
	case st.Version != 0 && uint64(stored) >= st.Version:
		return 0, fmt.Errorf("service %q: stored version %d, offered %d: %w", st.Name, stored, st.Version, storage.ErrStaleVersion)
	}
	if st.Version == 0 {
		st.Version = uint64(stored) + 1
	}
	_, err = tx.ExecContext(ctx,
		`INSERT INTO services (name, version, level, computed_level, override_id, calm_since, changed_at, cause, created_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		 ON CONFLICT (name) DO UPDATE SET
		   version = excluded.version, level = excluded.level, computed_level = excluded.computed_level,
		   override_id = excluded.override_id, calm_since = excluded.calm_since,
		   changed_at = excluded.changed_at, cause = excluded.cause, retired_at = 0`,
		st.Name, int64(st.Version), st.Level, st.ComputedLevel, st.OverrideID,
		unixNano(st.CalmSince), unixNano(st.ChangedAt), st.Cause, unixNano(st.CreatedAt))
	if err != nil {
		return 0, err
	}
	for _, c := range changes {
		if c.Version > math.MaxInt64 {
			return 0, fmt.Errorf("level change version %d out of range", c.Version)
		}
		if c.Version == 0 {
			c.Version = st.Version
		}
		service := c.Service
		if service == "" {
			service = st.Name
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO level_changes (service, kind, from_level, to_level, at, cause, version, inputs)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			service, c.Kind, c.FromLevel, c.ToLevel, unixNano(c.At), c.Cause, int64(c.Version), rawText(c.Inputs)); err != nil {
			return 0, err
		}
	}
	return st.Version, nil
}

// RetireService marks an active service retired and writes a's audit
// entry, in one transaction. The row (with its version) and the service's
// history stay; saving a state for it again revives it. ENOTFOUND when no
// active service has that name.
func (db *DB) RetireService(ctx context.Context, name string, at time.Time, a brownout.AuditEntry) error {
	return db.inTx(ctx, "retire_service", func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE services SET retired_at = ? WHERE name = ? AND retired_at = 0`, unixNano(at), name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return brownout.Errorf(brownout.ENOTFOUND, "service %q not found", name)
		}
		return insertAudit(ctx, tx, a, name)
	})
}
