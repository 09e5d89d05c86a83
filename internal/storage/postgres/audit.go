package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
)

// insertAudit appends a within tx. service is the service the action is
// about when the caller knows it; otherwise it is derived from a.Target.
func insertAudit(ctx context.Context, tx pgx.Tx, a brownout.AuditEntry, service string) error {
	b := &pgx.Batch{}
	queueAudit(b, a, service)
	return tx.SendBatch(ctx, b).Close()
}

// queueAudit queues insertAudit's statement on b, a batch sent within a
// transaction.
func queueAudit(b *pgx.Batch, a brownout.AuditEntry, service string) {
	if service == "" || service == brownout.GlobalScope {
		service = storage.AuditService(a.Target)
	}
	b.Queue(`INSERT INTO audit (at, actor, actor_id, action, target, service, before, after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		unixNano(a.At), a.Actor, a.ActorID, a.Action, a.Target, service, rawText(a.Before), rawText(a.After))
}
