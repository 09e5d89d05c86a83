package app

import (
	"context"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/controller"
	"github.com/brownout-io/brownout/internal/hub"
	"github.com/brownout-io/brownout/internal/replica"
)

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
