-- Initial schema of the PostgreSQL store, the same tables as the SQLite
-- store's 0001 plus what several replicas share: the leadership lease and
-- the per-replica partial sums of reports. Times are BIGINT Unix
-- nanoseconds (UTC), as in SQLite, so that both stores answer alike; JSON
-- documents are TEXT, kept byte for byte.

-- +goose Up

CREATE TABLE thresholds (
    scope      TEXT   PRIMARY KEY,
    body       TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE flag_sets (
    scope      TEXT   PRIMARY KEY,
    body       TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Persisted per-service state. version is allocated here, in the
-- transaction that commits the state, so it never goes back whichever
-- replica commits.
CREATE TABLE services (
    name           TEXT    PRIMARY KEY,
    version        BIGINT  NOT NULL CHECK (version > 0),
    level          INTEGER NOT NULL,
    computed_level INTEGER NOT NULL,
    override_id    TEXT    NOT NULL DEFAULT '',
    calm_since     BIGINT  NOT NULL DEFAULT 0,
    changed_at     BIGINT  NOT NULL,
    cause          TEXT    NOT NULL DEFAULT '',
    -- why the state is what it is, in words, so that every replica
    -- publishes the same snapshot
    detail         TEXT    NOT NULL DEFAULT '',
    created_at     BIGINT  NOT NULL
);

CREATE TABLE level_changes (
    id         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service    TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    from_level INTEGER NOT NULL,
    to_level   INTEGER NOT NULL,
    at         BIGINT  NOT NULL,
    cause      TEXT    NOT NULL,
    version    BIGINT  NOT NULL,
    inputs     TEXT
);
CREATE INDEX level_changes_service ON level_changes (service, id);

CREATE TABLE overrides (
    id         TEXT    PRIMARY KEY,
    service    TEXT    NOT NULL,
    level      INTEGER NOT NULL,
    reason     TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    emergency  BOOLEAN NOT NULL DEFAULT false,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT,
    cleared_at BIGINT,
    cleared_by TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX overrides_uncleared ON overrides (created_at, id) WHERE cleared_at IS NULL;

CREATE TABLE tokens (
    id         TEXT   PRIMARY KEY,
    name       TEXT   NOT NULL,
    scope      TEXT   NOT NULL,
    service    TEXT   NOT NULL DEFAULT '',
    hash       BYTEA  NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    created_by TEXT   NOT NULL DEFAULT '',
    revoked_at BIGINT
);

CREATE TABLE audit (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT NOT NULL,
    actor   TEXT   NOT NULL,
    action  TEXT   NOT NULL,
    target  TEXT   NOT NULL,
    service TEXT   NOT NULL DEFAULT '',
    before  TEXT,
    after   TEXT
);
CREATE INDEX audit_service ON audit (service, id);
CREATE INDEX audit_actor ON audit (actor, id);

CREATE TABLE series (
    id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT   NOT NULL UNIQUE
);

CREATE TABLE samples (
    series_id  BIGINT           NOT NULL,
    at         BIGINT           NOT NULL,
    cpu        DOUBLE PRECISION NOT NULL,
    memory     DOUBLE PRECISION NOT NULL,
    error_rate DOUBLE PRECISION NOT NULL,
    requests   DOUBLE PRECISION NOT NULL,
    errors     DOUBLE PRECISION NOT NULL,
    instances  INTEGER          NOT NULL,
    PRIMARY KEY (series_id, at)
);

CREATE TABLE sample_rollups (
    series_id     BIGINT           NOT NULL,
    minute        BIGINT           NOT NULL,
    n             BIGINT           NOT NULL,
    cpu_sum       DOUBLE PRECISION NOT NULL,
    memory_sum    DOUBLE PRECISION NOT NULL,
    requests      DOUBLE PRECISION NOT NULL,
    errors        DOUBLE PRECISION NOT NULL,
    max_instances INTEGER          NOT NULL,
    PRIMARY KEY (series_id, minute)
);

-- Small store-internal values: the epoch, the rollup watermark.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The epoch belongs to the database: made once, here, for its life.
INSERT INTO meta (key, value)
VALUES ('epoch', 'e' || substr(md5(random()::text || clock_timestamp()::text), 1, 16));

-- The leadership lease: one row. term grows by one with every new holder
-- (and when a lease lapsed), so a commit fenced by (holder, term) fails
-- once anyone else has led. expires_at is on the database's clock.
CREATE TABLE leader (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    holder     TEXT    NOT NULL DEFAULT '',
    term       BIGINT  NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity'
);
INSERT INTO leader (id) VALUES (1);

-- What each replica folded from the reports it received, per service and
-- tick; the leader takes (deletes and merges) every replica's rows. body
-- is the replica's fold, opaque to the store.
CREATE TABLE report_partials (
    replica TEXT   NOT NULL,
    service TEXT   NOT NULL,
    tick    BIGINT NOT NULL,
    body    BYTEA  NOT NULL,
    PRIMARY KEY (tick, replica, service)
);

-- The replica set: one row per replica, refreshed by its heartbeat;
-- seen_at is on the database's clock.
CREATE TABLE replicas (
    id          TEXT             PRIMARY KEY,
    addr        TEXT             NOT NULL DEFAULT '',
    leader      BOOLEAN          NOT NULL DEFAULT false,
    term        BIGINT           NOT NULL DEFAULT 0,
    subscribers INTEGER          NOT NULL DEFAULT 0,
    lag_ms      DOUBLE PRECISION NOT NULL DEFAULT 0,
    started_at  BIGINT           NOT NULL DEFAULT 0,
    seen_at     TIMESTAMPTZ      NOT NULL
);
CREATE INDEX replicas_seen ON replicas (seen_at);

-- +goose Down
DROP TABLE replicas;
DROP TABLE report_partials;
DROP TABLE leader;
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
