-- Notifications: admin-managed webhooks, the outbox of deliveries written
-- in the same transaction as the events they report, and the dead letters
-- of deliveries that ran out of attempts. Times are Unix nanoseconds.
-- A delivery's id is its event's id, ".", its webhook's id: stable across
-- retries and redrives, so that receivers can deduplicate by it.

-- +goose Up
CREATE TABLE webhooks (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    url        TEXT    NOT NULL,
    format     TEXT    NOT NULL,
    events     TEXT    NOT NULL DEFAULT '', -- comma-separated types; '' for all
    secret     TEXT    NOT NULL,            -- HMAC key: signing needs it in clear
    created_at INTEGER NOT NULL,
    created_by TEXT    NOT NULL DEFAULT ''
);

CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,
    webhook_id  TEXT    NOT NULL,
    event       TEXT    NOT NULL,            -- the event, JSON
    created_at  INTEGER NOT NULL,
    next_at     INTEGER NOT NULL,            -- due from
    lease_until INTEGER NOT NULL DEFAULT 0,  -- claimed until
    attempts    INTEGER NOT NULL DEFAULT 0,  -- started, each counted before its request
    last_error  TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox (next_at, seq);
CREATE INDEX outbox_webhook ON outbox (webhook_id);

CREATE TABLE dead_letters (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL UNIQUE,
    webhook_id TEXT    NOT NULL,
    event      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL,
    last_error TEXT    NOT NULL,
    dead_at    INTEGER NOT NULL
);

-- +goose Down
DROP TABLE dead_letters;
DROP TABLE outbox;
DROP TABLE webhooks;
