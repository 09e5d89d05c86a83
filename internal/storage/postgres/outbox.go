package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

// The outbox and dead letters; storage/outbox.go says how they work.

const webhookColumns = `id, name, url, format, events, secret, created_at, created_by`

func scanWebhook(sc pgx.Row) (brownout.Webhook, error) {
	var w brownout.Webhook
	var events string
	var created int64
	if err := sc.Scan(&w.ID, &w.Name, &w.URL, &w.Format, &events, &w.Secret, &created, &w.CreatedBy); err != nil {
		return brownout.Webhook{}, err
	}
	w.Events = storage.SplitEvents(events)
	w.CreatedAt = fromNano(created)
	return w, nil
}

// CreateWebhook stores w (ID and Secret chosen by the caller) and appends
// a, in one transaction. A duplicate ID is ECONFLICT.
func (db *DB) CreateWebhook(ctx context.Context, w brownout.Webhook, a brownout.AuditEntry) error {
	if w.ID == "" || w.Secret == "" {
		return brownout.Errorf(brownout.EBADREQUEST, "webhook id and secret must not be empty")
	}
	return db.inTx(ctx, "create_webhook", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO webhooks (`+webhookColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			w.ID, w.Name, w.URL, w.Format, storage.JoinEvents(w.Events), w.Secret, unixNano(w.CreatedAt), w.CreatedBy); err != nil {
			return err
		}
		return insertAudit(ctx, tx, a, "")
	})
}

// ListWebhooks returns every webhook, oldest first, secrets included.
func (db *DB) ListWebhooks(ctx context.Context) ([]brownout.Webhook, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+webhookColumns+` FROM webhooks ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	defer rows.Close()
	var out []brownout.Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, fmt.Errorf("list webhooks: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return out, nil
}

// DeleteWebhook removes webhook id and its pending deliveries and appends
// a, in one transaction; ENOTFOUND when unknown.
func (db *DB) DeleteWebhook(ctx context.Context, id string, a brownout.AuditEntry) (brownout.Webhook, error) {
	var w brownout.Webhook
	err := db.inTx(ctx, "delete_webhook", func(tx pgx.Tx) error {
		var err error
		w, err = scanWebhook(tx.QueryRow(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = $1`, id))
		if err != nil {
			return notFound(err, "webhook %q not found", id)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM outbox WHERE webhook_id = $1`, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM webhooks WHERE id = $1`, id); err != nil {
			return err
		}
		return insertAudit(ctx, tx, a, "")
	})
	return w, err
}

// insertEvents writes one outbox row per event and webhook that wants it,
// within tx.
func insertEvents(ctx context.Context, tx pgx.Tx, evs []brownout.Event) error {
	b := &pgx.Batch{}
	if err := queueEvents(b, evs); err != nil {
		return err
	}
	return tx.SendBatch(ctx, b).Close()
}

// queueEvents queues on b, a batch sent within a transaction, one
// statement that writes every event's outbox rows: one per event and
// webhook that wants it, in the events' order. Without webhooks (the usual
// case) it writes nothing, however many services an emergency changes.
func queueEvents(b *pgx.Batch, evs []brownout.Event) error {
	if len(evs) == 0 {
		return nil
	}
	ids, bodies, ats, patterns := make([]string, len(evs)), make([]string, len(evs)), make([]int64, len(evs)), make([]string, len(evs))
	for i, ev := range evs {
		if err := storage.CheckEvent(ev); err != nil {
			return err
		}
		body, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		ids[i], bodies[i], ats[i], patterns[i] = ev.ID, string(body), unixNano(ev.At), storage.EventPattern(ev.Type)
	}
	b.Queue(`INSERT INTO outbox (id, webhook_id, event, created_at, next_at)
		 SELECT e.id || '.' || w.id, w.id, e.body, e.at, e.at
		 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[]) WITH ORDINALITY AS e(id, body, at, pattern, n)
		 JOIN webhooks w ON w.events = '' OR (',' || w.events || ',') LIKE e.pattern
		 ORDER BY e.n, w.id`,
		ids, bodies, ats, patterns)
	return nil
}

// AddEvents writes evs to the outbox in one transaction.
func (db *DB) AddEvents(ctx context.Context, evs []brownout.Event) error {
	if len(evs) == 0 {
		return nil
	}
	return db.inTx(ctx, "add_events", func(tx pgx.Tx) error { return insertEvents(ctx, tx, evs) })
}

const deliveryColumns = `id, webhook_id, event, created_at, attempts, last_error`

func scanDelivery(sc pgx.Row, dead bool) (brownout.Delivery, error) {
	var d brownout.Delivery
	var event string
	var created, deadAt int64
	dest := []any{&d.ID, &d.WebhookID, &event, &created, &d.Attempts, &d.LastError}
	if dead {
		dest = append(dest, &deadAt)
	}
	if err := sc.Scan(dest...); err != nil {
		return brownout.Delivery{}, err
	}
	if err := json.Unmarshal([]byte(event), &d.Event); err != nil {
		return brownout.Delivery{}, fmt.Errorf("delivery %s: event: %w", d.ID, err)
	}
	d.CreatedAt = fromNano(created)
	d.DeadAt = fromNano(deadAt)
	return d, nil
}

// ClaimDeliveries leases up to n due deliveries whose lease is free,
// oldest first, until now+lease. SKIP LOCKED lets replicas claiming at
// the same moment take different rows instead of queueing on each other.
func (db *DB) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, n int) ([]brownout.Delivery, error) {
	// Deliverers poll: look before taking the write lock, so that an
	// empty or waiting outbox costs one indexed read, not a transaction.
	var one int
	if err := db.pool.QueryRow(ctx, `SELECT 1 FROM outbox WHERE next_at <= $1 AND lease_until <= $1 LIMIT 1`, now.UnixNano()).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	var out []brownout.Delivery
	err := db.inTx(ctx, "claim_deliveries", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx,
			`UPDATE outbox SET lease_until = $1
			 WHERE seq IN (SELECT seq FROM outbox WHERE next_at <= $2 AND lease_until <= $2 ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED)
			 RETURNING `+deliveryColumns+`, seq`,
			now.Add(lease).UnixNano(), now.UnixNano(), n)
		if err != nil {
			return err
		}
		defer rows.Close()
		var seqs []int64
		for rows.Next() {
			var seq int64
			d, err := scanDelivery(scanSeq{rows, &seq}, false)
			if err != nil {
				return err
			}
			out = append(out, d)
			seqs = append(seqs, seq)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		sortBySeq(out, seqs)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scanSeq scans a delivery row followed by its seq column.
type scanSeq struct {
	rows pgx.Rows
	seq  *int64
}

func (s scanSeq) Scan(dest ...any) error { return s.rows.Scan(append(dest, s.seq)...) }

// sortBySeq orders ds (RETURNING's order is unspecified) by seqs.
func sortBySeq(ds []brownout.Delivery, seqs []int64) {
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && seqs[j] < seqs[j-1]; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
			seqs[j], seqs[j-1] = seqs[j-1], seqs[j]
		}
	}
}

// StartAttempt counts an attempt of delivery id and extends its lease,
// durably; ENOTFOUND when the delivery is gone.
func (db *DB) StartAttempt(ctx context.Context, id string, now time.Time, lease time.Duration) (int, error) {
	var n int
	err := db.inTx(ctx, "start_attempt", func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE outbox SET attempts = attempts + 1, lease_until = $1 WHERE id = $2 RETURNING attempts`,
			now.Add(lease).UnixNano(), id).Scan(&n)
		return notFound(err, "delivery %q not found", id)
	})
	return n, err
}

// FailAttempt records why the latest attempt of delivery id failed.
func (db *DB) FailAttempt(ctx context.Context, id, msg string) error {
	return db.inTx(ctx, "fail_attempt", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE outbox SET last_error = $1 WHERE id = $2`, msg, id)
		return err
	})
}

// CompleteDelivery removes delivered delivery id from the outbox.
func (db *DB) CompleteDelivery(ctx context.Context, id string) error {
	return db.inTx(ctx, "complete_delivery", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM outbox WHERE id = $1`, id)
		return err
	})
}

// RetryLater frees delivery id's lease and makes it due at at.
func (db *DB) RetryLater(ctx context.Context, id string, at time.Time, msg string) error {
	return db.inTx(ctx, "retry_later", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE outbox SET lease_until = 0, next_at = $1, last_error = $2 WHERE id = $3`, at.UnixNano(), msg, id)
		return err
	})
}

// DeadLetter moves delivery id from the outbox to the dead letters, in one
// transaction; ENOTFOUND when it is not in the outbox.
func (db *DB) DeadLetter(ctx context.Context, id string, at time.Time, msg string) error {
	return db.inTx(ctx, "dead_letter", func(tx pgx.Tx) error {
		res, err := tx.Exec(ctx,
			`INSERT INTO dead_letters (id, webhook_id, event, created_at, attempts, last_error, dead_at)
			 SELECT id, webhook_id, event, created_at, attempts, $1, $2 FROM outbox WHERE id = $3`, msg, at.UnixNano(), id)
		if err != nil {
			return err
		}
		if res.RowsAffected() == 0 {
			return brownout.Errorf(brownout.ENOTFOUND, "delivery %q not found", id)
		}
		_, err = tx.Exec(ctx, `DELETE FROM outbox WHERE id = $1`, id)
		return err
	})
}

// ListDeadLetters pages the dead letters, newest first.
func (db *DB) ListDeadLetters(ctx context.Context, f brownout.Filter) (brownout.Page[brownout.Delivery], error) {
	var page brownout.Page[brownout.Delivery]
	limit, err := storage.PageLimit(f.Limit)
	if err != nil {
		return page, err
	}
	q := `SELECT ` + deliveryColumns + `, dead_at, seq FROM dead_letters`
	var args []any
	if f.Cursor != "" {
		c, err := storage.DecodeCursor(storage.DeadLetterCursor, f.Cursor)
		if err != nil {
			return page, err
		}
		q += ` WHERE seq < $1`
		args = append(args, c)
	}
	q += fmt.Sprintf(` ORDER BY seq DESC LIMIT $%d`, len(args)+1)
	args = append(args, limit+1)
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return page, fmt.Errorf("list dead letters: %w", err)
	}
	defer rows.Close()
	var last int64
	page.Items = []brownout.Delivery{}
	for rows.Next() {
		var seq int64
		d, err := scanDelivery(scanSeq{rows, &seq}, true)
		if err != nil {
			return page, fmt.Errorf("list dead letters: %w", err)
		}
		if len(page.Items) == limit {
			page.NextCursor = storage.EncodeCursor(storage.DeadLetterCursor, last)
			break
		}
		page.Items = append(page.Items, d)
		last = seq
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("list dead letters: %w", err)
	}
	return page, nil
}

// RedriveDeadLetter moves dead letter id back to the outbox, due at at with
// no attempts, and appends a, in one transaction.
func (db *DB) RedriveDeadLetter(ctx context.Context, id string, at time.Time, a brownout.AuditEntry) (brownout.Delivery, error) {
	var d brownout.Delivery
	err := db.inTx(ctx, "redrive_dead_letter", func(tx pgx.Tx) error {
		var err error
		d, err = scanDelivery(tx.QueryRow(ctx, `SELECT `+deliveryColumns+`, dead_at FROM dead_letters WHERE id = $1`, id), true)
		if err != nil {
			return notFound(err, "dead letter %q not found", id)
		}
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM webhooks WHERE id = $1`, d.WebhookID).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
			return brownout.Errorf(brownout.ECONFLICT, "webhook %q of dead letter %q was deleted; there is nowhere to redrive it", d.WebhookID, id)
		} else if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx,
			`INSERT INTO outbox (id, webhook_id, event, created_at, next_at, last_error)
			 SELECT id, webhook_id, event, created_at, $1, last_error FROM dead_letters WHERE id = $2`, at.UnixNano(), id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM dead_letters WHERE id = $1`, id); err != nil {
			return err
		}
		return insertAudit(ctx, tx, a, d.Event.Service)
	})
	if err != nil {
		return brownout.Delivery{}, err
	}
	d.Attempts, d.DeadAt = 0, time.Time{}
	return d, nil
}

// OutboxStats counts pending deliveries and dead letters.
func (db *DB) OutboxStats(ctx context.Context) (pending, dead int, err error) {
	err = db.pool.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM outbox), (SELECT COUNT(*) FROM dead_letters)`).Scan(&pending, &dead)
	if err != nil {
		return 0, 0, fmt.Errorf("outbox stats: %w", err)
	}
	return pending, dead, nil
}

// PruneDeadLetters deletes up to batch dead letters older than before.
func (db *DB) PruneDeadLetters(ctx context.Context, before time.Time, batch int) (int, error) {
	var n int64
	err := db.inTx(ctx, "prune_dead_letters", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx,
			`DELETE FROM dead_letters WHERE seq IN (SELECT seq FROM dead_letters WHERE dead_at < $1 ORDER BY seq LIMIT $2)`,
			before.UnixNano(), batch)
		n = tag.RowsAffected()
		return err
	})
	return int(n), err
}
