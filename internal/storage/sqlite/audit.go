package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

// insertAudit appends a within tx. service is the service the action is
// about when the caller knows it; otherwise it is derived from a.Target.
func insertAudit(ctx context.Context, tx *wtx, a brownout.AuditEntry, service string) error {
	if service == "" || service == brownout.GlobalScope {
		service = storage.AuditService(a.Target)
	}
	_, err := tx.ExecContext(ctx,
		`INSERT INTO audit (at, actor, actor_id, action, target, service, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		unixNano(a.At), a.Actor, a.ActorID, a.Action, a.Target, service, rawText(a.Before), rawText(a.After))
	return err
}

func rawText(m json.RawMessage) sql.NullString {
	if len(m) == 0 {
		return sql.NullString{}
	}
	return sql.NullString{String: string(m), Valid: true}
}

func textRaw(s sql.NullString) json.RawMessage {
	if !s.Valid {
		return nil
	}
	return json.RawMessage(s.String)
}
