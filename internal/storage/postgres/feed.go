package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/brownout-io/brownout"
)

// Channel is the LISTEN/NOTIFY channel every commit announces its changes
// on. Channels are per database, so replicas share a database, not a
// schema.
const Channel = "brownout_changes"

// notify announces c to every listener, within tx: PostgreSQL delivers it
// when, and only if, tx commits, and in commit order.
func (db *DB) notify(ctx context.Context, tx pgx.Tx, c brownout.Change) error {
	b := &pgx.Batch{}
	if err := db.queueNotify(b, c); err != nil {
		return err
	}
	return tx.SendBatch(ctx, b).Close()
}

// queueNotify queues notify's statement on b, a batch sent within the
// announcing transaction.
func (db *DB) queueNotify(b *pgx.Batch, c brownout.Change) error {
	c.Replica = db.replica
	c.At = db.now().UTC()
	p, err := json.Marshal(c)
	if err != nil {
		return err
	}
	b.Queue(`SELECT pg_notify($1, $2)`, Channel, string(p))
	return nil
}

const (
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 2 * time.Second
	// listenPing is how long the connection may stay silent before the
	// listener checks it with a round trip, so that a dead connection (a
	// cut network, a killed server) is noticed within seconds, not at the
	// next TCP timeout.
	listenPing = 2 * time.Second
	// listenPingTimeout bounds that round trip: a feed cut off is reported
	// lost within listenPing + listenPingTimeout.
	listenPingTimeout = 3 * time.Second
)

// Listen calls fn, from one goroutine and in commit order, for every
// change any replica commits, this one included, until ctx ends; then it
// returns nil. It follows the feed on a connection of its own and
// reconnects on its own, with capped, jittered backoff: when the
// connection drops it calls fn with a brownout.ChangeLost change, and
// after every (re)connect, the first one included, it calls fn with a
// brownout.ChangeResync change before any other, once LISTEN is in place,
// so that the receiver re-reads what it holds and nothing committed while
// it was not listening leaves it stale. fn must not block for long. Ready
// reports the feed down while it is disconnected.
func (db *DB) Listen(ctx context.Context, fn func(brownout.Change)) error {
	if fn == nil {
		return errors.New("listen: nil handler")
	}
	db.feedStarted.Store(true)
	defer db.feedUp.Store(false)
	backoff := listenBackoffMin
	for ctx.Err() == nil {
		start := time.Now()
		connected, err := db.session(ctx, fn)
		db.feedUp.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			fn(brownout.Change{Kind: brownout.ChangeLost})
		}
		db.log.Warn("change feed disconnected", "err", err)
		if time.Since(start) > 10*time.Second {
			backoff = listenBackoffMin // it was up for a while: start over
		}
		// Full jitter, so that replicas do not reconnect in lockstep.
		wait := time.Duration(rand.Int64N(int64(backoff))) + time.Millisecond
		backoff = min(2*backoff, listenBackoffMax)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	return nil
}

// session runs one connection: LISTEN, the resync change, then
// notifications until the connection or ctx ends. connected says whether
// the resync was delivered (so the caller owes a ChangeLost).
func (db *DB) session(ctx context.Context, fn func(brownout.Change)) (connected bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, db.config.ConnConfig.Copy())
	cancel()
	if err != nil {
		return false, translate(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(cctx)
		cancel()
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+Channel); err != nil {
		return false, translate(err)
	}
	// LISTEN is in place: whatever commits from now on is queued on this
	// connection, so a read the receiver starts now misses nothing.
	db.feedUp.Store(true)
	fn(brownout.Change{Kind: brownout.ChangeResync, Replica: db.replica, At: db.now().UTC()})
	db.log.Info("change feed listening", "channel", Channel)
	for {
		wctx, cancel := context.WithTimeout(ctx, listenPing)
		// Notifications that arrived during a previous call (a ping, say)
		// are buffered by pgx and returned first.
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return true, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// Silent for listenPing: prove the connection is alive.
			pctx, cancel := context.WithTimeout(ctx, listenPingTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return true, translate(err)
			}
			continue
		default:
			return true, translate(err)
		}
		var c brownout.Change
		if err := json.Unmarshal([]byte(n.Payload), &c); err != nil || c.Kind == "" {
			db.log.Warn("change feed: payload not understood", "payload", n.Payload)
			continue
		}
		fn(c)
	}
}

// sortPartials orders partials by tick, then replica, then service.
func sortPartials(ps []brownout.Partial) {
	slices.SortFunc(ps, func(a, b brownout.Partial) int {
		if a.Tick != b.Tick {
			if a.Tick < b.Tick {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a.Replica, b.Replica); c != 0 {
			return c
		}
		return strings.Compare(a.Service, b.Service)
	})
}
