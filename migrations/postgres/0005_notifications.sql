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
    created_at BIGINT  NOT NULL,
    created_by TEXT    NOT NULL DEFAULT ''
);

CREATE TABLE outbox (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    webhook_id  TEXT    NOT NULL,
    event       TEXT    NOT NULL,            -- the event, JSON
    created_at  BIGINT  NOT NULL,
    next_at     BIGINT  NOT NULL,            -- due from
    lease_until BIGINT  NOT NULL DEFAULT 0,  -- claimed until
    attempts    BIGINT  NOT NULL DEFAULT 0,  -- started, each counted before its request
    last_error  TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox (next_at, seq);
CREATE INDEX outbox_webhook ON outbox (webhook_id);

CREATE TABLE dead_letters (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         TEXT    NOT NULL UNIQUE,
    webhook_id TEXT    NOT NULL,
    event      TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    attempts   BIGINT  NOT NULL,
    last_error TEXT    NOT NULL,
    dead_at    BIGINT  NOT NULL
);

-- +goose Down
DROP TABLE dead_letters;
DROP TABLE outbox;
DROP TABLE webhooks;
