-- The acting token's ID beside its name: names are free text, IDs tell
-- tokens apart. Entries written before this migration have none ('').

-- +goose Up
ALTER TABLE audit ADD COLUMN actor_id TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_actor_id ON audit (actor_id, id);

-- +goose Down
DROP INDEX audit_actor_id;
ALTER TABLE audit DROP COLUMN actor_id;
