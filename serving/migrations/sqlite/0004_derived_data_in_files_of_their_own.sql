-- The log's index tables and the profiles leave the main file. SQLite has one
-- writer per database file: the indexer's sorted bulk inserts and the profile
-- write-back held that lock between appends, so every append waited for them
-- (under batched load the lock was busy all the time). They now live in two
-- files beside the main one, attached to every connection as `idx` and `prof`
-- (their tables are created by `src/store/sqlite_derived.sql` before the
-- migrations run), each with its own writer. Both hold derived data: a lost
-- file is rebuilt from the log. Their positions move with them: `indexed_seq`
-- to `idx.index_meta`, `profiles_seq` to `prof.profile_meta`, each written in
-- the transaction of the rows it describes.
INSERT OR IGNORE INTO idx.interaction_ids (id, seq)
SELECT id, seq FROM main.interaction_ids ORDER BY id;
INSERT OR IGNORE INTO idx.interaction_users (user_id, seq)
SELECT user_id, seq FROM main.interaction_users ORDER BY user_id, seq;
INSERT OR REPLACE INTO idx.index_meta (key, value)
SELECT key, value FROM main.meta WHERE key = 'indexed_seq';
DROP TABLE main.interaction_ids;
DROP TABLE main.interaction_users;

INSERT OR REPLACE INTO prof.profiles
SELECT user_id, spending_class, life_stage, real_life_stage, topics, body, updated_at
FROM main.profiles;
INSERT OR REPLACE INTO prof.profile_meta (key, value)
SELECT key, value FROM main.meta WHERE key = 'profiles_seq';
DROP TABLE main.profiles;
DELETE FROM main.meta WHERE key IN ('indexed_seq', 'profiles_seq');

-- Users whose erasure began: an erasure spans the three files, which commit
-- one after another, so it is marked here first and the mark removed only
-- once every file is clean; start-up finishes any erasure still marked.
CREATE TABLE erasures (
    user_id TEXT PRIMARY KEY
);
