-- Dashboard sessions ended on the server (signed out) before they expire.
-- A session cookie whose id is listed here is refused; rows go once the
-- session would have expired anyway.

-- +goose Up
CREATE TABLE ended_sessions (
    id         TEXT   PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX ended_sessions_expires ON ended_sessions (expires_at);

-- +goose Down
DROP TABLE ended_sessions;
