// Package storage is Brownout's embedded store: one SQLite file (driver
// modernc.org/sqlite, pure Go) in the data directory, its schema in the
// embedded migrations (package migrations, applied by goose on Open, one
// file per transaction).
//
// # Durability
//
// Configuration (thresholds, flag sets), overrides, tokens, service states,
// level changes and audit entries are committed before the method returns,
// each change together with its audit entry in one transaction. The write
// connection runs journal_mode=WAL with synchronous=FULL: a commit is
// fsynced to the WAL before it is acknowledged, so it survives a power loss,
// not only a process crash. (WAL with synchronous=NORMAL would survive only
// the latter.) Those writes are rare, so the fsync costs nothing that
// matters.
//
// Samples are the one high-rate write. They go through a SampleWriter: one
// goroutine that writes a batch per flush interval in one transaction (one
// fsync per batch). A crash loses at most the samples still queued, about
// one flush interval; nothing else.
//
// # Connections
//
// DB holds two pools on the file: a write pool of exactly one connection,
// whose transactions begin IMMEDIATE, so that writers queue in Go and never
// see SQLITE_BUSY; and a read pool of several query_only connections, which
// WAL lets read while the writer writes. busy_timeout(5000) covers other
// processes (a backup, the sqlite3 shell).
//
// # Schema in brief
//
// Times are INTEGER Unix nanoseconds (UTC) everywhere; the zero time is
// stored as 0 in NOT NULL columns and as NULL in nullable ones. JSON
// documents are TEXT.
//
//   - thresholds, flag_sets (scope PK, body JSON): one row per service with
//     its own set, scope "*" for the global default set.
//   - services (name PK): the persisted ServiceState; version never goes
//     back (SaveServiceState returns ErrStaleVersion).
//   - level_changes (id, service, …), index (service, id).
//   - overrides (id PK), partial index on uncleared ones.
//   - tokens (id PK, hash UNIQUE).
//   - audit (id, at, actor, action, target, service, before, after), indexes
//     (service, id) and (actor, id).
//   - series (id, name UNIQUE): a small integer per service for samples.
//   - samples (series_id, at) PRIMARY KEY, WITHOUT ROWID: one service's time
//     range is one contiguous b-tree range.
//   - sample_rollups (series_id, minute) PRIMARY KEY, WITHOUT ROWID: per
//     minute, sample count and sums (cpu, memory, requests, errors) and max
//     instances, so that coarser steps aggregate exactly.
//   - meta (key, value): the rollup watermark.
//
// # Lists
//
// ListAudit and ListLevelChanges page newest first by id with an opaque
// cursor; a cursor that is not one of that list's is EBADREQUEST on field
// "cursor". Limit 0 means DefaultLimit, above brownout.MaxLimit is clamped,
// negative is EBADREQUEST. From and To select [From, To) on At.
//
// Audit entries are filtered by service through a column the store fills:
// the service of the change when the method knows it (a service's
// thresholds or flags, an override of one service, an sdk token of one
// service), else derived from Target: the NAME of a "service:NAME" word in
// it, as in "service:checkout" or "override:o1 service:checkout".
// Deletes of config that did not exist change nothing and are not audited.
//
// # Samples and retention
//
// QuerySamples reads raw samples where they exist and per-minute rollups
// for older parts of the range (see its doc). Rollup aggregates minutes
// after a stored watermark; Prune deletes old rows per series in small
// batches, each its own transaction; RunRetention runs both periodically.
//
// # Errors
//
// Methods return *brownout.Error for what the caller caused (ENOTFOUND for
// unknown ids, ECONFLICT for duplicates and for state that forbids the
// change, EBADREQUEST for bad parameters) and wrapped driver errors
// otherwise.
package storage
