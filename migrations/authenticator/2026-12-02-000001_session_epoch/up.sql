-- Sessions that end when they should. A session token carries the epoch
-- its account had at login (claim `sep`); a password change, a
-- deactivation or a logout of every device bumps the epoch, ending every
-- token issued before. A logout of one device ends that token alone: its
-- `jti` is kept here until the token would have expired anyway.
ALTER TABLE accounts
    ADD COLUMN session_epoch  BIGINT NOT NULL DEFAULT 0,
    -- [{"jti": "...", "exp": <unix seconds>}, ...], at most a few dozen.
    ADD COLUMN ended_sessions JSONB  NOT NULL DEFAULT '[]';
