package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

// The outbox and dead letters; storage/outbox.go says how they work.

const webhookColumns = `id, name, url, format, events, secret, created_at, created_by`

func scanWebhook(sc interface{ Scan(...any) error }) (brownout.Webhook, error) {
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
	return db.inTx(ctx, "create_webhook", func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO webhooks (`+webhookColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			w.ID, w.Name, w.URL, w.Format, storage.JoinEvents(w.Events), w.Secret, unixNano(w.CreatedAt), w.CreatedBy); err != nil {
			return err
		}
		return insertAudit(ctx, tx, a, "")
	})
}

// ListWebhooks returns every webhook, oldest first, secrets included.
func (db *DB) ListWebhooks(ctx context.Context) ([]brownout.Webhook, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+webhookColumns+` FROM webhooks ORDER BY created_at, id`)
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
	err := db.inTx(ctx, "delete_webhook", func(tx *wtx) error {
		var err error
		w, err = scanWebhook(tx.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = ?`, id))
		if err != nil {
			return notFound(err, "webhook %q not found", id)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE webhook_id = ?`, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhooks WHERE id = ?`, id); err != nil {
			return err
		}
		return insertAudit(ctx, tx, a, "")
	})
	return w, err
}

// insertEvents writes one outbox row per event and webhook that wants it,
// within tx.
func insertEvents(ctx context.Context, tx *wtx, evs []brownout.Event) error {
	if len(evs) == 0 {
		return nil
	}
	// Without webhooks (the usual case) an emergency over a large fleet
	// costs one query here rather than one per service.
	var hooks bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM webhooks)`).Scan(&hooks); err != nil || !hooks {
		return err
	}
	for _, ev := range evs {
		if err := storage.CheckEvent(ev); err != nil {
			return err
		}
		body, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		at := unixNano(ev.At)
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO outbox (id, webhook_id, event, created_at, next_at)
			 SELECT ? || '.' || id, id, ?, ?, ? FROM webhooks
			 WHERE events = '' OR (',' || events || ',') LIKE ?`,
			ev.ID, string(body), at, at, storage.EventPattern(ev.Type)); err != nil {
			return err
		}
	}
	return nil
}

// AddEvents writes evs to the outbox in one transaction.
func (db *DB) AddEvents(ctx context.Context, evs []brownout.Event) error {
	if len(evs) == 0 {
		return nil
	}
	return db.inTx(ctx, "add_events", func(tx *wtx) error { return insertEvents(ctx, tx, evs) })
}

const deliveryColumns = `id, webhook_id, event, created_at, attempts, last_error`

func scanDelivery(sc interface{ Scan(...any) error }, dead bool) (brownout.Delivery, error) {
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
// oldest first, until now+lease. One writer connection serialises claims.
func (db *DB) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, n int) ([]brownout.Delivery, error) {
	// Deliverers poll: look before taking the write lock, so that an
	// empty or waiting outbox costs one indexed read, not a transaction.
	var one int
	if err := db.read.QueryRowContext(ctx, `SELECT 1 FROM outbox WHERE next_at <= ? AND lease_until <= ? LIMIT 1`, now.UnixNano(), now.UnixNano()).Scan(&one); errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	var out []brownout.Delivery
	err := db.inTx(ctx, "claim_deliveries", func(tx *wtx) error {
		rows, err := tx.QueryContext(ctx,
			`UPDATE outbox SET lease_until = ?
			 WHERE seq IN (SELECT seq FROM outbox WHERE next_at <= ? AND lease_until <= ? ORDER BY seq LIMIT ?)
			 RETURNING `+deliveryColumns+`, seq`,
			now.Add(lease).UnixNano(), now.UnixNano(), now.UnixNano(), n)
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
	rows *sql.Rows
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
	err := db.inTx(ctx, "start_attempt", func(tx *wtx) error {
		err := tx.QueryRowContext(ctx, `UPDATE outbox SET attempts = attempts + 1, lease_until = ? WHERE id = ? RETURNING attempts`,
			now.Add(lease).UnixNano(), id).Scan(&n)
		return notFound(err, "delivery %q not found", id)
	})
	return n, err
}

// FailAttempt records why the latest attempt of delivery id failed.
func (db *DB) FailAttempt(ctx context.Context, id, msg string) error {
	return db.inTx(ctx, "fail_attempt", func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `UPDATE outbox SET last_error = ? WHERE id = ?`, msg, id)
		return err
	})
}

// CompleteDelivery removes delivered delivery id from the outbox.
func (db *DB) CompleteDelivery(ctx context.Context, id string) error {
	return db.inTx(ctx, "complete_delivery", func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE id = ?`, id)
		return err
	})
}

// RetryLater frees delivery id's lease and makes it due at at.
func (db *DB) RetryLater(ctx context.Context, id string, at time.Time, msg string) error {
	return db.inTx(ctx, "retry_later", func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `UPDATE outbox SET lease_until = 0, next_at = ?, last_error = ? WHERE id = ?`, at.UnixNano(), msg, id)
		return err
	})
}

// DeadLetter moves delivery id from the outbox to the dead letters, in one
// transaction; ENOTFOUND when it is not in the outbox.
func (db *DB) DeadLetter(ctx context.Context, id string, at time.Time, msg string) error {
	return db.inTx(ctx, "dead_letter", func(tx *wtx) error {
		res, err := tx.ExecContext(ctx,
			`INSERT INTO dead_letters (id, webhook_id, event, created_at, attempts, last_error, dead_at)
			 SELECT id, webhook_id, event, created_at, attempts, ?, ? FROM outbox WHERE id = ?`, msg, at.UnixNano(), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return brownout.Errorf(brownout.ENOTFOUND, "delivery %q not found", id)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM outbox WHERE id = ?`, id)
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
		q += ` WHERE seq < ?`
		args = append(args, c)
	}
	q += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, limit+1)
	rows, err := db.read.QueryContext(ctx, q, args...)
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
	err := db.inTx(ctx, "redrive_dead_letter", func(tx *wtx) error {
		var err error
		d, err = scanDelivery(tx.QueryRowContext(ctx, `SELECT `+deliveryColumns+`, dead_at FROM dead_letters WHERE id = ?`, id), true)
		if err != nil {
			return notFound(err, "dead letter %q not found", id)
		}
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM webhooks WHERE id = ?`, d.WebhookID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return brownout.Errorf(brownout.ECONFLICT, "webhook %q of dead letter %q was deleted; there is nowhere to redrive it", d.WebhookID, id)
		} else if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO outbox (id, webhook_id, event, created_at, next_at, last_error)
			 SELECT id, webhook_id, event, created_at, ?, last_error FROM dead_letters WHERE id = ?`, at.UnixNano(), id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM dead_letters WHERE id = ?`, id); err != nil {
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
	err = db.read.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM outbox), (SELECT COUNT(*) FROM dead_letters)`).Scan(&pending, &dead)
	if err != nil {
		return 0, 0, fmt.Errorf("outbox stats: %w", err)
	}
	return pending, dead, nil
}

// ReleaseLeases frees every delivery's lease. Only one process opens the
// file (the data directory is locked), so at start any lease left is a
// killed predecessor's and need not be waited out; it returns how many
// were freed. Attempts already counted stay counted.
func (db *DB) ReleaseLeases(ctx context.Context) (int, error) {
	var n int64
	err := db.inTx(ctx, "release_leases", func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE outbox SET lease_until = 0 WHERE lease_until > 0`)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// PruneDeadLetters deletes up to batch dead letters older than before.
func (db *DB) PruneDeadLetters(ctx context.Context, before time.Time, batch int) (int, error) {
	var n int64
	err := db.inTx(ctx, "prune_dead_letters", func(tx *wtx) error {
		res, err := tx.ExecContext(ctx,
			`DELETE FROM dead_letters WHERE seq IN (SELECT seq FROM dead_letters WHERE dead_at < ? ORDER BY seq LIMIT ?)`,
			before.UnixNano(), batch)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}
