package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"

	"github.com/brownout-io/brownout"
)

// insertAudit appends a within tx. service is the service the action is
// about when the caller knows it; otherwise it is derived from a.Target.
func insertAudit(ctx context.Context, tx *sql.Tx, a brownout.AuditEntry, service string) error {
	if service == "" || service == brownout.GlobalScope {
		service = auditService(a.Target)
	}
	_, err := tx.ExecContext(ctx,
		`INSERT INTO audit (at, actor, actor_id, action, target, service, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		unixNano(a.At), a.Actor, a.ActorID, a.Action, a.Target, service, rawText(a.Before), rawText(a.After))
	return err
}

// auditService derives the service an audit target is about: the NAME of
// a "service:NAME" word in it (at the start or after a space, ending at
// '/', ':', a space or the end), as in "service:checkout" or
// "override:o1 service:checkout". Targets without one, or with
// "service:*", are about no service.
func auditService(target string) string {
	for word := range strings.FieldsSeq(target) {
		rest, ok := strings.CutPrefix(word, "service:")
		if !ok {
			continue
		}
		if i := strings.IndexAny(rest, "/:"); i >= 0 {
			rest = rest[:i]
		}
		if brownout.ValidName(rest) {
			return rest
		}
	}
	return ""
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
