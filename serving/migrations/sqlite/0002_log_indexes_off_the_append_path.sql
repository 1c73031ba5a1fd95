-- Lookups of the interaction log by id and by user leave the append path.
-- Random-order index inserts (ids and users arrive in no order) dirtied a
-- page each and dominated the cost of a durable group commit. The log is now
-- appended in `seq` order only; `interaction_ids` and `interaction_users` are
-- filled behind it in sorted bulk by the store's indexer, and everything after
-- `meta.indexed_seq` is looked up in the store's in-memory log tail instead.
-- `meta.log_seq` is the highest seq ever assigned (the writer assigns them).

CREATE TABLE interactions_log (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    kind INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    origin_id TEXT NOT NULL,
    origin_type TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    target_type TEXT NOT NULL,
    amount REAL,
    currency TEXT,
    quantity REAL,
    received_at INTEGER NOT NULL
);
INSERT INTO interactions_log
SELECT seq, id, user_id, kind, ts, origin_id, origin_type, actor_type, target_id,
       target_type, amount, currency, quantity, received_at
FROM interactions;
INSERT INTO meta (key, value)
VALUES ('log_seq', MAX(
    COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'interactions'), 0),
    COALESCE((SELECT MAX(seq) FROM interactions), 0)))
ON CONFLICT (key) DO UPDATE SET value = excluded.value;
DROP TABLE interactions;
ALTER TABLE interactions_log RENAME TO interactions;

CREATE TABLE interaction_ids (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE interaction_users (
    user_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
INSERT INTO interaction_ids (id, seq) SELECT id, seq FROM interactions WHERE true ORDER BY id;
INSERT INTO interaction_users (user_id, seq)
SELECT user_id, seq FROM interactions WHERE true ORDER BY user_id, seq;
INSERT INTO meta (key, value)
VALUES ('indexed_seq', COALESCE((SELECT MAX(seq) FROM interactions), 0))
ON CONFLICT (key) DO UPDATE SET value = excluded.value;
