-- Lookups of the interaction log by id and by user leave the append path.
-- Random-order index inserts (ids and users arrive in no order) dominated the
-- cost of a durable group commit. The log is now appended in `seq` order only;
-- `interaction_ids` and `interaction_users` are filled behind it in sorted
-- bulk by the store's indexer, and everything after `meta.indexed_seq` is
-- looked up in the store's in-memory log tail instead. `meta.log_seq` is the
-- highest seq ever assigned (the writer assigns them; same design as SQLite).

INSERT INTO meta (key, value)
VALUES ('log_seq', GREATEST(
    COALESCE((SELECT MAX(seq) FROM interactions), 0),
    (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM interactions_seq_seq)))
ON CONFLICT (key) DO UPDATE SET value = excluded.value;
ALTER TABLE interactions ALTER COLUMN seq DROP DEFAULT;
DROP SEQUENCE interactions_seq_seq;
ALTER TABLE interactions DROP CONSTRAINT interactions_id_key;
DROP INDEX interactions_by_user;

CREATE TABLE interaction_ids (
    id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
);
CREATE TABLE interaction_users (
    user_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (user_id, seq)
);
INSERT INTO interaction_ids (id, seq) SELECT id, seq FROM interactions ORDER BY id;
INSERT INTO interaction_users (user_id, seq) SELECT user_id, seq FROM interactions ORDER BY user_id, seq;
INSERT INTO meta (key, value)
VALUES ('indexed_seq', COALESCE((SELECT MAX(seq) FROM interactions), 0))
ON CONFLICT (key) DO UPDATE SET value = excluded.value;
