package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

const serviceColumns = `name, version, level, computed_level, override_id, calm_since, changed_at, cause, detail, created_at`

// serviceRead is what a read of a state selects: the written columns and
// the retirement.
const serviceRead = serviceColumns + `, retired_at`

func scanService(sc pgx.Row) (brownout.ServiceState, error) {
	var st brownout.ServiceState
	var version, calm, changed, created, retired int64
	if err := sc.Scan(&st.Name, &version, &st.Level, &st.ComputedLevel, &st.OverrideID,
		&calm, &changed, &st.Cause, &st.Detail, &created, &retired); err != nil {
		return brownout.ServiceState{}, err
	}
	st.Version = uint64(version)
	st.CalmSince, st.ChangedAt, st.CreatedAt, st.RetiredAt = fromNano(calm), fromNano(changed), fromNano(created), fromNano(retired)
	return st, nil
}

// LoadServices returns every persisted service state, by name.
func (db *DB) LoadServices(ctx context.Context) ([]brownout.ServiceState, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+serviceRead+` FROM services ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("load services: %w", translate(err))
	}
	defer rows.Close()
	var out []brownout.ServiceState
	for rows.Next() {
		st, err := scanService(rows)
		if err != nil {
			return nil, fmt.Errorf("load services: %w", translate(err))
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load services: %w", translate(err))
	}
	return out, nil
}

// LoadServiceStates returns the committed states of the named services,
// Detail and RetiredAt included, in one read; a name with no state is left
// out. A replica told of several state changes on the feed at once reads
// them with this.
func (db *DB) LoadServiceStates(ctx context.Context, names []string) ([]brownout.ServiceState, error) {
	rows, err := db.pool.Query(ctx, loadStates, names)
	if err != nil {
		return nil, fmt.Errorf("load service states: %w", translate(err))
	}
	return collectStates(rows)
}

const loadStates = `SELECT ` + serviceRead + ` FROM services WHERE name = ANY($1) ORDER BY name`

func collectStates(rows pgx.Rows) ([]brownout.ServiceState, error) {
	defer rows.Close()
	var out []brownout.ServiceState
	for rows.Next() {
		st, err := scanService(rows)
		if err != nil {
			return nil, fmt.Errorf("load service states: %w", translate(err))
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load service states: %w", translate(err))
	}
	return out, nil
}

// LoadService returns the committed state of one service, Detail and
// RetiredAt included; ENOTFOUND when it has none. A replica told of a state change on
// the feed reads it with this.
func (db *DB) LoadService(ctx context.Context, name string) (brownout.ServiceState, error) {
	st, err := scanService(db.pool.QueryRow(ctx, `SELECT `+serviceRead+` FROM services WHERE name = $1`, name))
	if err != nil {
		return brownout.ServiceState{}, fmt.Errorf("load service: %w", notFound(err, "service %q not found", name))
	}
	return st, nil
}

// SaveServiceState saves one state and its level changes; see
// SaveServiceStates.
func (db *DB) SaveServiceState(ctx context.Context, st brownout.ServiceState, changes []brownout.LevelChange) error {
	return db.SaveServiceStates(ctx, []brownout.StateChange{{State: st, Changes: changes}})
}

// SaveServiceStates saves several services' states and level changes in
// one transaction, all or nothing, and announces each state on the change
// feed. A state with Version 0 is given the next version in the
// transaction (the stored one plus one, 1 for a new service; the row lock
// of the upsert orders replicas committing the same service), written back
// into batch once committed, together with every one of its Changes whose
// Version is 0. Any other version must be above the stored one, else
// nothing is stored and the error wraps storage.ErrStaleVersion.
//
// When ctx carries a brownout.Fence, the same transaction first checks
// that the fence still holds the leadership; when it does not, nothing is
// stored and the error wraps brownout.ErrFenced.
func (db *DB) SaveServiceStates(ctx context.Context, batch []brownout.StateChange) error {
	if err := checkStates(batch); err != nil {
		return err
	}
	if len(batch) == 0 {
		return nil
	}
	var versions []uint64
	b := txBatch()
	save := db.queueStates(ctx, b, batch)
	err := db.inTxBatch(ctx, "save_service_state", b, func(tx pgx.Tx) error {
		var err error
		versions, err = save.finish(ctx, tx)
		return err
	})
	if err != nil {
		return err
	}
	storage.SetVersions(batch, versions)
	return nil
}

func checkStates(batch []brownout.StateChange) error {
	for _, sc := range batch {
		if sc.State.Version > math.MaxInt64 {
			return fmt.Errorf("save service state: version %d out of range", sc.State.Version)
		}
		for _, c := range sc.Changes {
			if c.Version > math.MaxInt64 {
				return fmt.Errorf("save service state: level change version %d out of range", c.Version)
			}
		}
		if sc.State.Name == "" {
			return brownout.FieldErrorf(brownout.EBADREQUEST, "service", "must not be empty")
		}
	}
	return nil
}

// upsertState upserts a state. The version is decided by the upsert
// itself, under the row's lock: with $2 = 0 it is the stored version plus
// one; else $2, and only when above the stored one (the WHERE refuses, and
// no row comes back).
const upsertState = `INSERT INTO services AS s (` + serviceColumns + `)
	VALUES ($1, CASE WHEN $2::bigint = 0 THEN 1 ELSE $2::bigint END, $3, $4, $5, $6, $7, $8, $9, $10)
	ON CONFLICT (name) DO UPDATE SET
	  version = CASE WHEN $2::bigint = 0 THEN s.version + 1 ELSE excluded.version END,
	  level = excluded.level, computed_level = excluded.computed_level,
	  override_id = excluded.override_id, calm_since = excluded.calm_since,
	  changed_at = excluded.changed_at, cause = excluded.cause, detail = excluded.detail, retired_at = 0
	WHERE $2::bigint = 0 OR s.version < excluded.version
	RETURNING version`

// stateSave is a batch of states being saved in a transaction, in two
// round trips however many states it holds: the fence check and the
// upserts, which allocate the versions, go with the transaction's first
// statements (queueStates); the level changes, the notifications and the
// events, which need the versions, follow together (finish).
type stateSave struct {
	db       *DB
	batch    []brownout.StateChange
	versions []int64
	refused  []bool // the stored version was not below the one offered
}

// queueStates queues on b, fenced by ctx's fence if it has one, the
// statements that allocate batch's versions; finish completes the save
// once b has been sent.
func (db *DB) queueStates(ctx context.Context, b *pgx.Batch, batch []brownout.StateChange) *stateSave {
	s := &stateSave{db: db, batch: batch, versions: make([]int64, len(batch)), refused: make([]bool, len(batch))}
	if len(batch) == 0 {
		return s
	}
	if f, ok := brownout.FenceFrom(ctx); ok {
		queueFence(b, f)
	}
	for i, sc := range batch {
		st := sc.State
		b.Queue(upsertState, st.Name, int64(st.Version), st.Level, st.ComputedLevel, st.OverrideID,
			unixNano(st.CalmSince), unixNano(st.ChangedAt), st.Cause, st.Detail, unixNano(st.CreatedAt)).QueryRow(func(row pgx.Row) error {
			err := row.Scan(&s.versions[i])
			if errors.Is(err, pgx.ErrNoRows) {
				s.refused[i] = true
				return nil
			}
			return err
		})
	}
	return s
}

// finish writes, within tx, what the allocated versions allow: each
// state's level changes and announcement and the level events; it returns
// the version of each state.
func (s *stateSave) finish(ctx context.Context, tx pgx.Tx) ([]uint64, error) {
	if len(s.batch) == 0 {
		return nil, nil
	}
	for i, refused := range s.refused {
		if !refused {
			continue
		}
		st := s.batch[i].State
		var stored int64
		if err := tx.QueryRow(ctx, `SELECT version FROM services WHERE name = $1`, st.Name).Scan(&stored); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("service %q: stored version %d, offered %d: %w", st.Name, stored, st.Version, storage.ErrStaleVersion)
	}
	b := &pgx.Batch{}
	versions := make([]uint64, len(s.batch))
	var evs []brownout.Event
	for i, sc := range s.batch {
		version := uint64(s.versions[i])
		versions[i] = version
		for _, c := range sc.Changes {
			if c.Version == 0 {
				c.Version = version
			}
			service := c.Service
			if service == "" {
				service = sc.State.Name
			}
			b.Queue(`INSERT INTO level_changes (service, kind, from_level, to_level, at, cause, version, inputs)
				 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
				service, c.Kind, c.FromLevel, c.ToLevel, unixNano(c.At), c.Cause, int64(c.Version), rawText(c.Inputs))
		}
		more := i < len(s.batch)-1
		if err := s.db.queueNotify(b, brownout.Change{Kind: brownout.ChangeState, Service: sc.State.Name, Version: version, More: more}); err != nil {
			return nil, err
		}
		st := sc.State
		st.Version = version
		evs = append(evs, storage.LevelEvents(st, sc.Changes)...)
	}
	// The level changes' notifications, in the same transaction.
	if err := queueEvents(b, evs); err != nil {
		return nil, err
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	return versions, nil
}

// RetireService marks an active service retired and writes a's audit
// entry, in one transaction, and announces it on the change feed (a state
// change at the unchanged version). The row (with its version) and the service's
// history stay; saving a state for it again revives it. ENOTFOUND when no
// active service has that name.
func (db *DB) RetireService(ctx context.Context, name string, at time.Time, a brownout.AuditEntry) error {
	return db.inTx(ctx, "retire_service", func(tx pgx.Tx) error {
		var version int64
		err := tx.QueryRow(ctx, `UPDATE services SET retired_at = $1 WHERE name = $2 AND retired_at = 0 RETURNING version`,
			unixNano(at), name).Scan(&version)
		if errors.Is(err, pgx.ErrNoRows) {
			return brownout.Errorf(brownout.ENOTFOUND, "service %q not found", name)
		}
		if err != nil {
			return err
		}
		if err := insertAudit(ctx, tx, a, name); err != nil {
			return err
		}
		// Other replicas read the state again and find it retired.
		return db.notify(ctx, tx, brownout.Change{Kind: brownout.ChangeRetire, Service: name, Version: uint64(version)})
	})
}
