package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

// AppendAudit appends one audit entry on its own, for actions that change
// nothing else in the store (e.g. a refused login). Actions that do change
// stored state go through the method that makes the change, which writes
// the entry in the same transaction.
func (db *DB) AppendAudit(ctx context.Context, a brownout.AuditEntry) error {
	return db.inTx(ctx, "append_audit", func(tx *wtx) error {
		return insertAudit(ctx, tx, a, "")
	})
}

// ListAudit returns one page of audit entries, newest first. f.Service
// matches entries about that service (see the package doc), f.Actor the
// actor's name or token ID exactly, f.From/f.To the half-open range [From, To) of At.
func (db *DB) ListAudit(ctx context.Context, f brownout.Filter) (brownout.Page[brownout.AuditEntry], error) {
	var page brownout.Page[brownout.AuditEntry]
	q, args, limit, err := pageQuery("a", f, `SELECT id, at, actor, actor_id, action, target, before, after FROM audit`, true)
	if err != nil {
		return page, err
	}
	rows, err := db.read.QueryContext(ctx, q, args...)
	if err != nil {
		return page, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a brownout.AuditEntry
		var at int64
		var before, after sql.NullString
		if err := rows.Scan(&a.ID, &at, &a.Actor, &a.ActorID, &a.Action, &a.Target, &before, &after); err != nil {
			return page, fmt.Errorf("list audit: %w", err)
		}
		a.At, a.Before, a.After = fromNano(at), textRaw(before), textRaw(after)
		page.Items = append(page.Items, a)
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("list audit: %w", err)
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		page.NextCursor = storage.EncodeCursor("a", page.Items[limit-1].ID)
	}
	return page, nil
}

// ListLevelChanges returns one page of level changes, newest first.
// f.Service matches the service exactly; f.Actor is ignored; f.From/f.To
// select the half-open range [From, To) of At.
func (db *DB) ListLevelChanges(ctx context.Context, f brownout.Filter) (brownout.Page[brownout.LevelChange], error) {
	var page brownout.Page[brownout.LevelChange]
	f.Actor = ""
	q, args, limit, err := pageQuery("l", f,
		`SELECT id, service, kind, from_level, to_level, at, cause, version, inputs FROM level_changes`, false)
	if err != nil {
		return page, err
	}
	rows, err := db.read.QueryContext(ctx, q, args...)
	if err != nil {
		return page, fmt.Errorf("list level changes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c brownout.LevelChange
		var at, version int64
		var inputs sql.NullString
		if err := rows.Scan(&c.ID, &c.Service, &c.Kind, &c.FromLevel, &c.ToLevel, &at, &c.Cause, &version, &inputs); err != nil {
			return page, fmt.Errorf("list level changes: %w", err)
		}
		c.At, c.Version, c.Inputs = fromNano(at), uint64(version), textRaw(inputs)
		page.Items = append(page.Items, c)
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("list level changes: %w", err)
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		page.NextCursor = storage.EncodeCursor("l", page.Items[limit-1].ID)
	}
	return page, nil
}

// pageQuery completes base with the filter, keyset pagination on id
// (newest first) and limit+1 rows, so that the caller knows whether a next
// page exists. kind tags cursors so that one list's cursor is refused by
// another.
func pageQuery(kind string, f brownout.Filter, base string, actor bool) (string, []any, int, error) {
	limit, err := storage.PageLimit(f.Limit)
	if err != nil {
		return "", nil, 0, err
	}
	var where []string
	var args []any
	if f.Cursor != "" {
		id, err := storage.DecodeCursor(kind, f.Cursor)
		if err != nil {
			return "", nil, 0, err
		}
		where, args = append(where, "id < ?"), append(args, id)
	}
	if f.Service != "" {
		where, args = append(where, "service = ?"), append(args, f.Service)
	}
	if actor && f.Actor != "" {
		where, args = append(where, "(actor = ? OR actor_id = ?)"), append(args, f.Actor, f.Actor)
	}
	if !f.From.IsZero() {
		where, args = append(where, "at >= ?"), append(args, f.From.UnixNano())
	}
	if !f.To.IsZero() {
		where, args = append(where, "at < ?"), append(args, f.To.UnixNano())
	}
	q := base
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit+1)
	return q, args, limit, nil
}
