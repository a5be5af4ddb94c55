-- What ends a user's sessions, from iam.user.v1: a session token whose
-- `sep` is below `session_epoch` (a password change, a deactivation, a
-- logout of every device) or whose `jti` is in `ended_sessions` (a logout
-- of one device) is refused.
ALTER TABLE users
    ADD COLUMN session_epoch  BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN ended_sessions TEXT[] NOT NULL DEFAULT '{}';
