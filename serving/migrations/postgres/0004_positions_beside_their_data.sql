-- The log's and the profiles' positions get tables of their own, as on
-- SQLite (where the index tables and the profiles moved to files of their
-- own, each with its own writer): the SQL stays the same on both engines.
CREATE TABLE index_meta (
    key TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO index_meta (key, value) SELECT key, value FROM meta WHERE key = 'indexed_seq';
CREATE TABLE profile_meta (
    key TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO profile_meta (key, value) SELECT key, value FROM meta WHERE key = 'profiles_seq';
DELETE FROM meta WHERE key IN ('indexed_seq', 'profiles_seq');

-- Users whose erasure began and has not finished (see the SQLite migration
-- of the same number; here an erasure is one transaction, so a mark is only
-- ever seen if the server stopped between the mark and the erasure).
CREATE TABLE erasures (
    user_id TEXT PRIMARY KEY
);
