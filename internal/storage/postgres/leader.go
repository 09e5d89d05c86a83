package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/brownout-io/brownout"
)

// MinLeaseTTL is the shortest lease Lead grants.
const MinLeaseTTL = 100 * time.Millisecond

// Lead takes the leadership lease for replica when it is free or expired,
// or renews it when replica holds it, for ttl from now on the database's
// clock, and returns the term held. While another replica holds an
// unexpired lease it returns an error wrapping brownout.ErrNotLeader. The
// term stays the same on renewal and grows by one whenever the lease
// changes hands or lapsed, so a new term is a new leadership, and state
// commits fenced by an older one fail with brownout.ErrFenced. replica
// must be unique per process: two processes with one name share a lease.
//
// Renew well within ttl (a third of it is a good rhythm), and stop leading
// when a renewal fails or ttl has passed on the local clock since the last
// success, whichever comes first; the fence makes a late stop harmless.
func (db *DB) Lead(ctx context.Context, replica string, ttl time.Duration) (int64, error) {
	if replica == "" {
		return 0, brownout.FieldErrorf(brownout.EBADREQUEST, "replica", "must not be empty")
	}
	ttl = max(ttl, MinLeaseTTL)
	var term int64
	err := db.inTx(ctx, "lead", func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx,
			`UPDATE leader SET
			   term = CASE WHEN holder = $1 AND expires_at > clock_timestamp() THEN term ELSE term + 1 END,
			   holder = $1,
			   expires_at = clock_timestamp() + make_interval(secs => $2)
			 WHERE id = 1 AND (holder = $1 OR expires_at <= clock_timestamp())
			 RETURNING term`, replica, ttl.Seconds()).Scan(&term)
		if errors.Is(err, pgx.ErrNoRows) {
			return brownout.ErrNotLeader
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("lead: %w", err)
	}
	return term, nil
}

// Resign ends replica's lease of term at once, so that another replica may
// lead without waiting for it to expire (a clean shutdown). A lease
// already lost is not an error.
func (db *DB) Resign(ctx context.Context, replica string, term int64) error {
	_, err := db.pool.Exec(ctx,
		`UPDATE leader SET expires_at = '-infinity' WHERE id = 1 AND holder = $1 AND term = $2`,
		replica, term)
	if err != nil {
		return fmt.Errorf("resign: %w", translate(err))
	}
	return nil
}

// fenceQuery selects the lease row when the fence ($1, $2) is the current,
// unexpired leadership, and holds it shared until the transaction ends, so
// that a takeover (an UPDATE of the row) waits for this commit and can
// never interleave with it.
const fenceQuery = `SELECT 1 FROM leader WHERE id = 1 AND holder = $1 AND term = $2 AND expires_at > clock_timestamp() FOR SHARE`

// queueFence queues on b the check that f still leads: the batch fails
// with brownout.ErrFenced there, before any statement after it is
// checked, unless f is the current, unexpired leadership (see fenceQuery).
// The transaction must be rolled back when it fails.
func queueFence(b *pgx.Batch, f brownout.Fence) {
	b.Queue(fenceQuery, f.Replica, f.Term).QueryRow(func(row pgx.Row) error {
		var one int
		err := row.Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("term %d of %q: %w", f.Term, f.Replica, brownout.ErrFenced)
		}
		return err
	})
}

// PutPartials stores one replica's folds of one tick, one body per
// service, in one transaction; a (replica, service, tick) stored again
// replaces the earlier body. The leader takes them with TakePartials.
func (db *DB) PutPartials(ctx context.Context, replica string, tick int64, bodies map[string][]byte) error {
	if replica == "" {
		return brownout.FieldErrorf(brownout.EBADREQUEST, "replica", "must not be empty")
	}
	if len(bodies) == 0 {
		return nil
	}
	services := make([]string, 0, len(bodies))
	blobs := make([][]byte, 0, len(bodies))
	for s, b := range bodies {
		if err := brownout.CheckName("service", s); err != nil {
			return err
		}
		if b == nil {
			b = []byte{}
		}
		services, blobs = append(services, s), append(blobs, b)
	}
	return db.inTx(ctx, "put_partials", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx,
			`INSERT INTO report_partials (replica, service, tick, body)
			 SELECT $1, s, $2, b FROM unnest($3::text[], $4::bytea[]) AS u(s, b)
			 ON CONFLICT (tick, replica, service) DO UPDATE SET body = excluded.body`,
			replica, tick, services, blobs)
		return err
	})
}

// TakePartials removes and returns every stored partial, oldest tick first
// (then by replica and service), in one transaction, so that each is
// merged once even if two replicas take at once.
func (db *DB) TakePartials(ctx context.Context) ([]brownout.Partial, error) {
	var out []brownout.Partial
	err := db.inTx(ctx, "take_partials", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM report_partials RETURNING replica, service, tick, body`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var p brownout.Partial
			if err := rows.Scan(&p.Replica, &p.Service, &p.Tick, &p.Body); err != nil {
				return err
			}
			out = append(out, p)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("take partials: %w", err)
	}
	sortPartials(out)
	return out, nil
}

// forgetReplicasAfter is how long a replica's row outlives its last
// heartbeat; replica ids are made anew at every start, so rows of replicas
// long gone are deleted.
const forgetReplicasAfter = time.Hour

// Heartbeat upserts r's row of the replica set; SeenAt is the database's
// clock at the upsert. Rows not refreshed for an hour are deleted.
func (db *DB) Heartbeat(ctx context.Context, r brownout.Replica) error {
	if r.ID == "" {
		return brownout.FieldErrorf(brownout.EBADREQUEST, "id", "must not be empty")
	}
	return db.inTx(ctx, "heartbeat", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM replicas WHERE seen_at < clock_timestamp() - make_interval(secs => $1)`,
			forgetReplicasAfter.Seconds()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx,
			`INSERT INTO replicas (id, addr, leader, term, subscribers, lag_ms, started_at, seen_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, clock_timestamp())
			 ON CONFLICT (id) DO UPDATE SET addr = excluded.addr, leader = excluded.leader, term = excluded.term,
			   subscribers = excluded.subscribers, lag_ms = excluded.lag_ms, started_at = excluded.started_at,
			   seen_at = excluded.seen_at`,
			r.ID, r.Addr, r.Leader, r.Term, r.Subscribers, r.LagMs, unixNano(r.StartedAt))
		return err
	})
}

// Replicas lists the replicas whose heartbeat the database saw within the
// last `within`, by ID.
func (db *DB) Replicas(ctx context.Context, within time.Duration) ([]brownout.Replica, error) {
	rows, err := db.pool.Query(ctx,
		`SELECT id, addr, leader, term, subscribers, lag_ms, started_at, seen_at FROM replicas
		 WHERE seen_at > clock_timestamp() - make_interval(secs => $1) ORDER BY id`, within.Seconds())
	if err != nil {
		return nil, fmt.Errorf("replicas: %w", translate(err))
	}
	defer rows.Close()
	var out []brownout.Replica
	for rows.Next() {
		var r brownout.Replica
		var started int64
		if err := rows.Scan(&r.ID, &r.Addr, &r.Leader, &r.Term, &r.Subscribers, &r.LagMs, &started, &r.SeenAt); err != nil {
			return nil, fmt.Errorf("replicas: %w", translate(err))
		}
		r.StartedAt, r.SeenAt = fromNano(started), r.SeenAt.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("replicas: %w", translate(err))
	}
	return out, nil
}
