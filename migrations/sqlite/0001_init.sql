-- Initial schema. Times are INTEGER Unix nanoseconds (UTC) everywhere;
-- JSON documents are TEXT.

-- +goose Up

-- Stored threshold sets: one row per scope, '*' is the global default set.
CREATE TABLE thresholds (
    scope      TEXT    PRIMARY KEY,
    body       TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Stored flag sets: one row per scope, '*' is the global default set.
CREATE TABLE flag_sets (
    scope      TEXT    PRIMARY KEY,
    body       TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Persisted per-service controller state; version never goes back.
CREATE TABLE services (
    name           TEXT    PRIMARY KEY,
    version        INTEGER NOT NULL,
    level          INTEGER NOT NULL,
    computed_level INTEGER NOT NULL,
    override_id    TEXT    NOT NULL DEFAULT '',
    calm_since     INTEGER NOT NULL DEFAULT 0,
    changed_at     INTEGER NOT NULL,
    cause          TEXT    NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL
);

CREATE TABLE level_changes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    service    TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    from_level INTEGER NOT NULL,
    to_level   INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    cause      TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    inputs     TEXT
);
CREATE INDEX level_changes_service ON level_changes (service, id);

CREATE TABLE overrides (
    id         TEXT    PRIMARY KEY,
    service    TEXT    NOT NULL,
    level      INTEGER NOT NULL,
    reason     TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    emergency  INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    cleared_at INTEGER,
    cleared_by TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX overrides_uncleared ON overrides (created_at, id) WHERE cleared_at IS NULL;

CREATE TABLE tokens (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    service    TEXT    NOT NULL DEFAULT '',
    hash       BLOB    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    created_by TEXT    NOT NULL DEFAULT '',
    revoked_at INTEGER
);

-- Operator actions. service is the service the action is about ('' when
-- none), derived by the store so that audit can be filtered by service.
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    target  TEXT    NOT NULL,
    service TEXT    NOT NULL DEFAULT '',
    before  TEXT,
    after   TEXT
);
CREATE INDEX audit_service ON audit (service, id);
CREATE INDEX audit_actor ON audit (actor, id);

-- Sample series: a small integer id per service keeps the sample keys short.
CREATE TABLE series (
    id   INTEGER PRIMARY KEY,
    name TEXT    NOT NULL UNIQUE
);

-- Raw samples, one per service per evaluation tick. Clustered on
-- (series, at) so that one service's time range is one contiguous read.
CREATE TABLE samples (
    series_id  INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    cpu        REAL    NOT NULL,
    memory     REAL    NOT NULL,
    error_rate REAL    NOT NULL,
    requests   REAL    NOT NULL,
    errors     REAL    NOT NULL,
    instances  INTEGER NOT NULL,
    PRIMARY KEY (series_id, at)
) WITHOUT ROWID;

-- Per-minute rollups of samples. Sums and counts rather than means, so that
-- coarser steps aggregate exactly.
CREATE TABLE sample_rollups (
    series_id     INTEGER NOT NULL,
    minute        INTEGER NOT NULL,
    n             INTEGER NOT NULL,
    cpu_sum       REAL    NOT NULL,
    memory_sum    REAL    NOT NULL,
    requests      REAL    NOT NULL,
    errors        REAL    NOT NULL,
    max_instances INTEGER NOT NULL,
    PRIMARY KEY (series_id, minute)
) WITHOUT ROWID;

-- Small store-internal values, such as the rollup watermark.
CREATE TABLE meta (
    key   TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
);

-- +goose Down
DROP TABLE meta;
DROP TABLE sample_rollups;
DROP TABLE samples;
DROP TABLE series;
DROP TABLE audit;
DROP TABLE tokens;
DROP TABLE overrides;
DROP TABLE level_changes;
DROP TABLE services;
DROP TABLE flag_sets;
DROP TABLE thresholds;
