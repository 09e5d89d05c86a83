package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/controller"
	"github.com/brownout-io/brownout/internal/hub"
	"github.com/brownout-io/brownout/internal/replica"
	"github.com/brownout-io/brownout/internal/storage"
	"github.com/brownout-io/brownout/internal/storage/postgres"
)

// The PostgreSQL store is what a replica needs.
var _ replica.Store = (*postgres.DB)(nil)

// The controller is what a replica drives.
var _ replica.Controller = (*controller.Controller)(nil)

// single is the replica set of a controller over a single-writer store:
// itself, always the leader.
type single struct {
	id, addr string
	started  time.Time
	hub      *hub.Hub
	now      func() time.Time
}

func (s single) Replicas(context.Context) ([]brownout.Replica, error) {
	return []brownout.Replica{{
		ID: s.id, Addr: s.addr, Leader: true, Subscribers: s.hub.Subscribers(),
		StartedAt: s.started, SeenAt: s.now().UTC(),
	}}, nil
}

// refreshReplicaMetrics exports each replica's subscribers as last
// heartbeated, so that any replica's /metrics shows the whole set.
func (a *App) refreshReplicaMetrics(ctx context.Context, set interface {
	Replicas(ctx context.Context) ([]brownout.Replica, error)
}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, every)
		rs, err := set.Replicas(rctx)
		cancel()
		if err == nil {
			a.Metrics.ReplicaSubscribers.Reset()
			for _, r := range rs {
				a.Metrics.ReplicaSubscribers.WithLabelValues(r.ID).Set(float64(r.Subscribers))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// openShared opens the PostgreSQL store shared by replicas and builds a
// follower over it; the replica runner makes it lead when it wins the
// lease.
func (a *App) openShared(ctx context.Context) error {
	if a.cfg.Replica.ID == "" {
		a.cfg.Replica.ID = replica.DefaultID()
	}
	db, err := postgres.Open(ctx, a.cfg.DataDir, postgres.Options{Log: a.cfg.Log, Replica: a.cfg.Replica.ID})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	a.pg, a.DB = db, db
	a.AdminToken = a.cfg.AdminToken
	a.cfg.Controller.Follower = true
	return a.build(ctx, db, sharedSessionKey(a.AdminToken))
}

// sharedSessionKey derives the dashboard's session signing key from the
// admin token, which every replica is started with: a session signed in on
// one replica is valid on all. Changing the admin token signs everyone out.
func sharedSessionKey(adminToken string) []byte {
	m := hmac.New(sha256.New, []byte(adminToken))
	m.Write([]byte("brownout dashboard session key v1"))
	return m.Sum(nil)
}

// leaderOnly runs retention on the leader only: one replica rolls up and
// prunes at a time.
type leaderOnly struct {
	storage.Retainer
	leading func() bool
}

func (l leaderOnly) Rollup(ctx context.Context, upTo time.Time) error {
	if !l.leading() {
		return nil
	}
	return l.Retainer.Rollup(ctx, upTo)
}

func (l leaderOnly) Prune(ctx context.Context, now time.Time, raw, rollup time.Duration, batch int) (int, error) {
	if !l.leading() {
		return 0, nil
	}
	return l.Retainer.Prune(ctx, now, raw, rollup, batch)
}
