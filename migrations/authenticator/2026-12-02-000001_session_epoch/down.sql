ALTER TABLE accounts DROP COLUMN ended_sessions, DROP COLUMN session_epoch;
