-- Retired services: DELETE /services/{s} keeps the row (its version, so
-- that a service reporting again continues above it) and its history, and
-- marks it retired (Unix nanoseconds; 0 while active).

-- +goose Up
ALTER TABLE services ADD COLUMN retired_at BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE services DROP COLUMN retired_at;
