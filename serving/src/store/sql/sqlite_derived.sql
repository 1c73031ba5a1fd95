-- Tables of the two files attached beside the main database (`idx`: the
-- interaction log's index tables; `prof`: the persisted profiles). Run on
-- every start before the migrations: both files hold derived data, and one
-- that is missing (deleted, or never there) starts empty and is rebuilt: the
-- indexer refills `idx` from the log, start-up re-scores every profile.
-- See migrations/sqlite/0004_derived_data_in_files_of_their_own.sql.
CREATE TABLE IF NOT EXISTS idx.interaction_ids (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idx.interaction_users (
    user_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
-- `indexed_seq`: every log seq up to it is in the two tables above.
CREATE TABLE IF NOT EXISTS idx.index_meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS prof.profiles (
    user_id TEXT PRIMARY KEY,
    spending_class INTEGER,
    life_stage TEXT,
    real_life_stage TEXT,
    -- '|a|b|': filtered with LIKE '%|a|%' (audience queries, not the hot path)
    topics TEXT NOT NULL,
    body TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS prof.profiles_by_spending ON profiles (spending_class, user_id);
CREATE INDEX IF NOT EXISTS prof.profiles_by_life_stage ON profiles (life_stage, user_id);
-- `profiles_seq`: every profile row is current up to this log seq.
CREATE TABLE IF NOT EXISTS prof.profile_meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
