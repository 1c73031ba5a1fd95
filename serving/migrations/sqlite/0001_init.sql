-- Micro's store on SQLite. Times are microseconds since the Unix epoch.

-- The interaction log: append-only except for erasure. `seq` orders commits
-- (AUTOINCREMENT: never reused, so "everything after seq S" stays exact).
CREATE TABLE interactions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
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
CREATE INDEX interactions_by_user ON interactions (user_id, seq);

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    user_id TEXT,
    payload TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX events_by_time ON events (received_at, id);
CREATE INDEX events_by_user ON events (user_id);

-- Profiles are derived (log + registration + model); persisted for lists and
-- restarts. `meta.profiles_seq` says up to which interaction seq every profile
-- row is current; later interactions are re-folded on start.
CREATE TABLE profiles (
    user_id TEXT PRIMARY KEY,
    spending_class INTEGER,
    life_stage TEXT,
    real_life_stage TEXT,
    -- '|a|b|': filtered with LIKE '%|a|%' (audience queries, not the hot path)
    topics TEXT NOT NULL,
    body TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX profiles_by_spending ON profiles (spending_class, user_id);
CREATE INDEX profiles_by_life_stage ON profiles (life_stage, user_id);

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
