// Package sqlite is Brownout's embedded store: one SQLite file (driver
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
// # Details the contract left open
//
//   - Config methods validate the service name (brownout.CheckName):
//     EBADREQUEST on field "service".
//   - A Delete of config that did not exist returns existed=false, changes
//     nothing and is not audited.
//   - SaveServiceState keeps created_at of the first save; a LevelChange
//     with an empty Service takes the state's name.
//   - ClearOverride refuses (ECONFLICT) an override that is already cleared
//     or no longer Active at the given time.
//   - Samples: a sample for a service and instant already stored replaces
//     it. QuerySamples leaves buckets without samples out of the answer and
//     returns an empty (non-nil) slice for an unknown service.
//
// # Lists
//
// ListAudit and ListLevelChanges page newest first by id (keyset, so
// entries appended meanwhile never shift a page: no duplicates, no gaps)
// with an opaque cursor; a cursor that is not one of that list's is
// EBADREQUEST on field "cursor". Limit 0 means DefaultLimit, above
// brownout.MaxLimit is clamped, negative is EBADREQUEST on field "limit".
// From and To select [From, To) on At.
//
// Audit entries are filtered by service through a column the store fills:
// the service of the change when the method knows it (a service's
// thresholds or flags, an override of one service, an sdk token of one
// service), else derived from Target: the NAME of a "service:NAME" word in
// it, as in "service:checkout" or "override:o1 service:checkout".
//
// # Samples and retention
//
// QuerySamples reads raw samples where they exist and per-minute rollups
// for older parts of the range: raw samples are pruned oldest first, so
// the store splits the range at the oldest raw sample of the service. When
// a rollup part is needed, the step is rounded up to whole minutes for the
// whole answer (so rollup and raw buckets line up). Rollup aggregates
// minutes after a stored watermark; Prune deletes old rows per series in
// small batches, each its own transaction; RunRetention runs both
// periodically, Rollup first, so that nothing is pruned before it is
// rolled up.
//
// The benchmarks in bench_test.go measure the history query and the write
// path; their doc says how to run them against 10 million rows.
//
// # Errors
//
// Methods return *brownout.Error for what the caller caused (ENOTFOUND for
// unknown ids, ECONFLICT for duplicates and for state that forbids the
// change, EBADREQUEST for bad parameters) and wrapped driver errors
// otherwise.
package sqlite
