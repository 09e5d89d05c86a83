// Package app assembles a running controller from its parts: store,
// authenticator, control loop, sample writer, retention, HTTP server. The
// command line (cmd/controlplane) parses flags into a Config and calls it;
// tests build the same thing in-process, so that what is tested is what
// runs.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/brownout-io/brownout/internal/auth"
	"github.com/brownout-io/brownout/internal/controller"
	"github.com/brownout-io/brownout/internal/hub"
	"github.com/brownout-io/brownout/internal/notify"
	"github.com/brownout-io/brownout/internal/replica"
	"github.com/brownout-io/brownout/internal/server"
	"github.com/brownout-io/brownout/internal/storage"
	"github.com/brownout-io/brownout/internal/storage/postgres"
	"github.com/brownout-io/brownout/internal/storage/sqlite"
	"github.com/brownout-io/brownout/web"
)

// Config is everything the controller can be told at start.
type Config struct {
	// DataDir holds the SQLite file and the generated admin token.
	DataDir string
	// AdminToken is the bootstrap admin token; generated into DataDir when
	// empty.
	AdminToken string

	Controller controller.Config
	Server     server.Config

	// RawRetention and RollupRetention keep raw samples and per-minute
	// rollups (24 h, 30 days); RetentionEvery is how often they are
	// enforced (1 min).
	RawRetention    time.Duration
	RollupRetention time.Duration
	RetentionEvery  time.Duration
	// SampleFlush is the sample writer's flush interval (1 s).
	SampleFlush time.Duration
	// Notify configures webhooks and their delivery.
	Notify notify.Config
	// Replica names this controller in the replica set and tunes its
	// leadership over a shared store.
	Replica replica.Config

	Log *slog.Logger
}

// DBFile is the SQLite file's name inside the data directory.
const DBFile = "brownout.db"

// App is a controller ready to serve. Run starts its loops; Close stops
// everything and flushes what is buffered.
type App struct {
	cfg        Config
	DB         Store
	Controller *controller.Controller
	Hub        *hub.Hub
	Auth       *auth.Authenticator
	Server     *server.Server
	Metrics    *server.Metrics
	// Notify manages webhooks and delivers the outbox; every replica of a
	// shared store delivers (claims never overlap).
	Notify *notify.Notifier
	// Replica runs leadership and the change feed over a shared store;
	// nil over SQLite.
	Replica *replica.Replica
	Samples *storage.SampleWriter
	// AdminToken is the bootstrap admin token in force; AdminTokenPath is
	// the file it was read from or written to ("" when from config).
	AdminToken     string
	AdminTokenPath string
	AdminGenerated bool

	lock     *dirLock
	pg       *postgres.DB
	replicas server.ReplicaSet
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	once     sync.Once
}

// New opens the store, loads state and builds the handler. It starts
// nothing; call Run.
func New(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	shared := postgres.IsDSN(cfg.DataDir)
	if shared && cfg.AdminToken == "" {
		return nil, errors.New("with a PostgreSQL store, set CONTROLPLANE_ADMIN_TOKEN, the same on every replica: there is no data directory to generate it into")
	}
	if cfg.RawRetention <= 0 {
		cfg.RawRetention = 24 * time.Hour
	}
	if cfg.RollupRetention <= 0 {
		cfg.RollupRetention = 30 * 24 * time.Hour
	}
	if cfg.RetentionEvery <= 0 {
		cfg.RetentionEvery = time.Minute
	}
	if cfg.SampleFlush <= 0 {
		cfg.SampleFlush = time.Second
	}
	a := &App{cfg: cfg}
	if shared {
		return a, a.openShared(ctx)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	a.lock = lock
	if cfg.AdminToken != "" {
		a.AdminToken = cfg.AdminToken
	} else {
		tok, path, created, err := auth.LoadOrCreateAdminToken(cfg.DataDir)
		if err != nil {
			_ = lock.release()
			return nil, err
		}
		a.AdminToken, a.AdminTokenPath, a.AdminGenerated = tok, path, created
	}
	db, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, DBFile), cfg.Log)
	if err != nil {
		_ = lock.release()
		return nil, fmt.Errorf("open store: %w", err)
	}
	a.DB = db
	a.cfg.Notify.Exclusive = db // the data directory lock keeps other processes out
	key, err := auth.LoadOrCreateSessionKey(cfg.DataDir)
	if err != nil {
		_ = db.Close()
		_ = lock.release()
		return nil, err
	}
	if err := a.build(ctx, db, key); err != nil {
		return nil, err
	}
	return a, nil
}

// Store is what the app needs of a store.
type Store = storage.Store

// build assembles everything above the store.
func (a *App) build(ctx context.Context, db Store, key []byte) error {
	cfg := a.cfg
	var err error
	a.Samples = storage.NewSampleWriter(db, cfg.SampleFlush, 5000, cfg.Log)
	a.Metrics = server.NewMetrics(func() float64 { return float64(a.Samples.Dropped()) })
	db.SetObserver(a.Metrics.StoreWriteObserved)
	now := cfg.Controller.Now
	a.Hub = hub.New(hub.Config{MaxInstances: cfg.Controller.MaxInstances, ForgetAfter: cfg.Controller.ForgetAfter, Now: now}, a.Metrics)
	a.Controller = controller.New(cfg.Controller, db, a.Samples, a.Hub, cfg.Log, a.Metrics)
	if err := a.Controller.Load(ctx); err != nil {
		a.closeStore()
		return fmt.Errorf("load controller state: %w", err)
	}
	a.Auth, err = auth.New(ctx, db, a.AdminToken, now)
	if err != nil {
		a.closeStore()
		return err
	}
	// A revocation through any door, or announced by another replica,
	// closes the token's subscriptions here.
	a.Auth.OnRevoke(func(id string) { a.Hub.CloseToken(id, "token revoked") })
	if a.pg != nil {
		a.Replica = replica.New(cfg.Replica, a.pg, a.Controller, a.Auth, a.Hub, a.Metrics, cfg.Log)
		cfg.Server.Replicas = a.Replica
		cfg.Server.Ready = func(context.Context) error { return a.Replica.Ready() }
	}
	if cfg.Server.Replicas == nil {
		id := cfg.Replica.ID
		if id == "" {
			id = "local"
		}
		cfg.Server.Replicas = single{id: id, addr: cfg.Replica.Addr, started: time.Now().UTC(), hub: a.Hub, now: time.Now}
		a.Metrics.Leader.Set(1)
		a.Metrics.FeedUp.Set(1)
	}
	a.replicas = cfg.Server.Replicas
	if cfg.Notify.Now == nil {
		cfg.Notify.Now = now
	}
	a.Notify = notify.New(cfg.Notify, db, cfg.Log, a.Metrics.Registry)
	cfg.Server.Notify = a.Notify
	dash := web.New(web.Deps{Replicas: a.replicas, Controller: a.Controller, Subscribers: a.Hub, Auth: a.Auth, History: db, Log: cfg.Log, Now: now, SessionKey: key, Sessions: db, OriginPatterns: cfg.Server.OriginPatterns, Notify: a.Notify})
	a.Server = server.New(cfg.Server, a.Controller, a.Hub, a.Auth, db, a.Metrics, cfg.Log, dash)
	return nil
}

// Handler is the root HTTP handler.
func (a *App) Handler() http.Handler { return a.Server.Handler() }

// Run starts the control loop and retention in the background.
func (a *App) Run(ctx context.Context) {
	ctx, a.cancel = context.WithCancel(ctx)
	a.wg.Add(4)
	go func() { defer a.wg.Done(); a.Controller.Run(ctx) }()
	go func() { defer a.wg.Done(); a.refreshReplicaMetrics(ctx, a.replicas, 5*time.Second) }()
	go func() {
		defer a.wg.Done()
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				a.Hub.Sweep()
			}
		}
	}()
	go func() {
		defer a.wg.Done()
		var db storage.Retainer = a.DB
		if a.Replica != nil {
			db = leaderOnly{a.DB, a.Controller.Leading}
		}
		storage.RunRetention(ctx, db, a.cfg.RetentionEvery, a.cfg.RawRetention, a.cfg.RollupRetention, a.cfg.Log)
	}()
	if a.Replica != nil {
		a.wg.Add(1)
		go func() { defer a.wg.Done(); a.Replica.Run(ctx) }()
	}
	a.wg.Add(1)
	go func() { defer a.wg.Done(); a.Notify.Run(ctx) }()
}

// Shutdown ends every subscription with going-away and waits (bounded by
// ctx) for the connections to finish. Call it after the HTTP server has
// stopped accepting, before Close.
func (a *App) Shutdown(ctx context.Context) {
	a.Hub.CloseAll()
	a.Server.WaitConnections(ctx)
}

// Close stops the loops, flushes the sample writer and closes the store.
func (a *App) Close(ctx context.Context) error {
	var err error
	a.once.Do(func() {
		if a.cancel != nil {
			a.cancel()
		}
		a.wg.Wait()
		err = a.closeStore()
	})
	return err
}

func (a *App) closeStore() error {
	var errs []error
	if a.Samples != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, a.Samples.Close(ctx))
		cancel()
	}
	errs = append(errs, a.DB.Close())
	if a.lock != nil {
		errs = append(errs, a.lock.release())
	}
	return errors.Join(errs...)
}
