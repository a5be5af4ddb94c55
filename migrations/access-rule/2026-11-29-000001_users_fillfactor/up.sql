-- Every rule event rewrites its user's row. With room left on each page the
-- new row version stays on the same page (a HOT update: no new entry in
-- users_pkey, one page dirtied and logged instead of three); on full pages
-- every update moves the row and inserts into the index. Pages written
-- before this migration keep no room until the table is rewritten
-- (VACUUM FULL users, or pg_repack without the lock).
ALTER TABLE users SET (fillfactor = 85);
