package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/storage"
	"github.com/brownout-io/brownout/migrations"
)

// Options tune a DB; the zero value is usable.
type Options struct {
	// MaxConns bounds the pool (default 10, or pool_max_conns in the DSN).
	// The change-feed listener holds one more connection of its own.
	MaxConns int32
	// WriteTimeout bounds each write transaction, begin to commit (default
	// 10 s), so that a database that stops answering (a cut network, not a
	// refused connection) turns writes into storage.ErrUnavailable in
	// bounded time rather than hanging the request.
	WriteTimeout time.Duration
	// Log receives the store's messages; nil discards them.
	Log *slog.Logger
	// Replica names this process in the changes it announces (see
	// brownout.Change.Replica); may be empty.
	Replica string
}

// DB is the PostgreSQL store: a pgx pool on one database that several
// controller replicas share. All methods are safe for concurrent use.
type DB struct {
	// Config holds the threshold and flag set methods.
	storage.Config

	pool    *pgxpool.Pool
	config  *pgxpool.Config
	log     *slog.Logger
	replica string
	// writeTimeout bounds one write transaction.
	writeTimeout time.Duration
	// now is the clock of Change.At; tests may replace it.
	now func() time.Time

	// feedUp is true while a Listen call is connected and has delivered
	// its resync; Ready reports it.
	feedUp      atomic.Bool
	feedStarted atomic.Bool

	observer atomic.Pointer[storage.Observer]

	// series caches service name → series id for the sample tables. Ids are
	// never deleted or reused, so a cached id stays valid.
	seriesMu sync.RWMutex
	series   map[string]int64
}

// IsDSN reports whether data names a PostgreSQL database (a postgres:// or
// postgresql:// URL) rather than a data directory.
func IsDSN(data string) bool {
	return strings.HasPrefix(data, "postgres://") || strings.HasPrefix(data, "postgresql://")
}

// Open connects to the database named by dsn (a postgres:// URL or a
// keyword/value string), applies the embedded migrations under an advisory
// lock, so that replicas starting together migrate once, and returns the
// store.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN, password included.
		return nil, errors.New("open postgres: the connection string is not valid")
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = 10
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	writeTimeout := opts.WriteTimeout
	if writeTimeout <= 0 {
		writeTimeout = 10 * time.Second
	}
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.HealthCheckPeriod = 5 * time.Second
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	// Every connection reads and writes UTC; times are stored as integers
	// anyway, this keeps the lease's timestamps legible in psql.
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "brownout"
	}
	if err := migrate(ctx, cfg.ConnConfig, log); err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", translate(err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres: %w", translate(err))
	}
	db := &DB{pool: pool, config: cfg, log: log, replica: opts.Replica, writeTimeout: writeTimeout, now: time.Now, series: map[string]int64{}}
	db.Config = storage.Config{Rows: configRows{db}}
	return db, nil
}

// migrate applies the migrations through database/sql (goose's interface)
// on a connection of its own. goose's Postgres session locker holds an
// advisory lock for the whole run, so that of several replicas starting
// at once one migrates and the others wait, then find nothing to do.
func migrate(ctx context.Context, cc *pgx.ConnConfig, log *slog.Logger) error {
	sdb := stdlib.OpenDB(*cc)
	defer sdb.Close()
	sdb.SetMaxOpenConns(2)
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockTimeout(1, 120), // up to two minutes behind another replica's migration
		lock.WithUnlockTimeout(1, 60),
	)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, sdb, migrations.Postgres(),
		goose.WithSessionLocker(locker), goose.WithSlog(log), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", translate(err))
	}
	for _, r := range res {
		log.Info("applied migration", "version", r.Source.Version, "path", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

// Close closes the pool. Stop the SampleWriter and any Listener first.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// Ping reports whether the database answers (for /readyz): a round trip
// on a pooled connection. It wraps storage.ErrUnavailable when not.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", translate(err))
	}
	return nil
}

// Ready reports whether this replica can serve (for /readyz): the database
// answers a round trip and, once Listen has been started, its change feed
// is connected. It wraps storage.ErrUnavailable when not.
func (db *DB) Ready(ctx context.Context) error {
	if err := db.Ping(ctx); err != nil {
		return err
	}
	if db.feedStarted.Load() && !db.feedUp.Load() {
		return fmt.Errorf("change feed is not connected: %w", storage.ErrUnavailable)
	}
	return nil
}

// SetObserver installs fn to be called after every write transaction (nil
// removes it). Used for metrics.
func (db *DB) SetObserver(fn storage.Observer) {
	if fn == nil {
		db.observer.Store(nil)
		return
	}
	db.observer.Store(&fn)
}

// inTx runs fn in one read-committed write transaction and commits it, or
// rolls back when fn fails. op names the operation for errors and the
// observer.
func (db *DB) inTx(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	return db.inTxBatch(ctx, op, txBatch(), fn)
}

// txBatch returns a batch that begins a transaction: the statements queued
// on it go to the server in the same round trip as the BEGIN.
func txBatch() *pgx.Batch {
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	return b
}

// inTxBatch is inTx whose first statements are b's (made by txBatch), sent
// with the BEGIN in one round trip and checked by their callbacks; fn, if
// not nil, runs after them. A transaction that needs nothing it has not
// read costs two round trips, BEGIN with its statements and COMMIT.
func (db *DB) inTxBatch(ctx context.Context, op string, b *pgx.Batch, fn func(tx pgx.Tx) error) (err error) {
	start := time.Now()
	defer func() {
		if o := db.observer.Load(); o != nil {
			(*o)(op, time.Since(start))
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, db.writeTimeout)
	defer cancel()
	br := db.pool.SendBatch(ctx, b)
	tx := br.Tx()
	defer func() {
		if err != nil {
			// A fresh context: the caller's may be what ended the
			// transaction. The rollback also returns the connection to the
			// pool; it is harmless when the BEGIN itself failed.
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = tx.Rollback(rctx)
			cancel()
		}
	}()
	if err := br.Close(); err != nil {
		if b.Len() == 1 {
			return fmt.Errorf("%s: begin: %w", op, translate(err))
		}
		return fmt.Errorf("%s: %w", op, translate(err))
	}
	if fn != nil {
		if err := fn(tx); err != nil {
			return fmt.Errorf("%s: %w", op, translate(err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%s: commit: %w", op, translate(err))
	}
	return nil
}

// translate maps driver errors to brownout errors: unique violations
// become ECONFLICT, no rows ENOTFOUND, and a database that cannot be
// reached (refused or broken connections, timeouts, a server shutting
// down) storage.ErrUnavailable, which the HTTP layer answers with 503.
// Anything else is returned as is.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var be *brownout.Error
	if errors.As(err, &be) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) || errors.Is(err, sql.ErrNoRows) {
		return &brownout.Error{Code: brownout.ENOTFOUND, Message: "not found"}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if pe.Code == "23505" { // unique_violation
			return &brownout.Error{Code: brownout.ECONFLICT, Message: "already exists"}
		}
		if msg := unavailableCode(pe.Code); msg != "" {
			return unavailable(msg, err)
		}
		return err
	}
	if unreachable(err) {
		return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
	}
	return err
}

// unavailableCode says in words what a server error means for writes when
// it means the database cannot take them now (it is not the statement's
// fault); "" otherwise.
func unavailableCode(code string) string {
	switch {
	case strings.HasPrefix(code, "08"): // connection exception
		return "the database connection failed; try again"
	case code == "53100": // disk_full
		return "the database's disk is full; writes are refused until it has room"
	case code == "53300": // too_many_connections
		return "the database has no free connections; try again"
	case strings.HasPrefix(code, "53"): // insufficient resources
		return "the database is out of resources; try again"
	case code == "25006": // read_only_sql_transaction
		return "the database is read-only (a standby, or read-only mode); writes are refused until it accepts them"
	case code == "57P01", code == "57P02", code == "57P03": // shutdown, crash shutdown, cannot connect now
		return "the database is shutting down or starting; try again"
	case strings.HasPrefix(code, "58"): // system error (I/O)
		return "the database reports a system error (I/O); try again"
	}
	return ""
}

// unavailable wraps err as a 503 that says why (msg) and wraps
// storage.ErrUnavailable.
func unavailable(msg string, err error) error {
	return fmt.Errorf("%w: %w: %w", &brownout.Error{Code: brownout.EUNAVAILABLE, Message: msg}, storage.ErrUnavailable, err)
}

// unreachable reports whether err says the database could not be reached
// or the connection broke, as opposed to a statement the server refused.
func unreachable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false // the caller gave up; nothing is wrong with the store
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), errors.Is(err, context.DeadlineExceeded),
		pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "closed pool")
}

// Time encoding: BIGINT Unix nanoseconds, UTC, as in the SQLite store. The
// zero time.Time is stored as 0 where a column is NOT NULL and as NULL
// where it is nullable.

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func nullNano(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	n := t.UnixNano()
	return &n
}

func fromNullNano(n *int64) *time.Time {
	if n == nil {
		return nil
	}
	t := time.Unix(0, *n).UTC()
	return &t
}

func rawText(m []byte) *string {
	if len(m) == 0 {
		return nil
	}
	s := string(m)
	return &s
}

func textRaw(s *string) []byte {
	if s == nil {
		return nil
	}
	return []byte(*s)
}
