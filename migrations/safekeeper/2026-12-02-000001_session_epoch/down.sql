ALTER TABLE users DROP COLUMN ended_sessions, DROP COLUMN session_epoch;
