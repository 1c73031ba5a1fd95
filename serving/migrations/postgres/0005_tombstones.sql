-- Erasure that sticks (issue 19): one tombstone per erased user, a keyed
-- hash of the id (never the id), until the user registers again; the key
-- is one of the service's secrets. An erasure's mark carries its tombstone,
-- so a start that finishes an interrupted erasure can write it.
CREATE TABLE erased_users (
    tombstone TEXT PRIMARY KEY,
    erased_at BIGINT NOT NULL
);
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
ALTER TABLE erasures ADD COLUMN tombstone TEXT;
