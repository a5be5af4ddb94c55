-- A user's environment role (the User Directory design's role across the
-- whole environment, beside the organization role of each membership).
-- Rows from before it existed read as `member`, the built-in default.
ALTER TABLE users ADD COLUMN environment_role TEXT NOT NULL DEFAULT 'member';

-- Changes of a member made through the API (PATCH /v1/users/{id}, PUT
-- /v1/users/{id}/role, DELETE /v1/users/{id}): recorded before the
-- provider is called, then moved pending -> provider_done -> completed by
-- compare and set on (state, attempt); the reconciler takes an open change
-- over once its lease has passed (raising `attempt`, so the request can no
-- longer move it) and completes it, or, when it cannot be completed,
-- sets the provider back to `previous` (compensating -> compensated).
CREATE TABLE user_changes (
    id                       UUID PRIMARY KEY,
    organization_id          UUID        NOT NULL,
    user_id                  UUID        NOT NULL,
    membership_id            UUID        NOT NULL,
    kind                     TEXT        NOT NULL CHECK (kind IN ('update', 'role', 'remove')),
    state                    TEXT        NOT NULL CHECK (state IN ('pending', 'provider_done', 'completed', 'compensating', 'compensated', 'failed')),
    attempt                  INT         NOT NULL DEFAULT 0,
    reference_id             TEXT        NOT NULL,
    membership_reference_id  TEXT,
    -- The values asked for (NULL: unchanged).
    email                    TEXT,
    first_name               TEXT,
    last_name                TEXT,
    environment_role         TEXT,
    role                     TEXT,
    -- The values before, to set the provider back to.
    previous                 JSONB       NOT NULL,
    last_error               TEXT,
    created_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at               TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One open change per user at a time.
CREATE UNIQUE INDEX user_changes_one_open ON user_changes (user_id)
    WHERE state IN ('pending', 'provider_done', 'compensating');
-- An email being given to a user is taken, as by a creation in flight.
CREATE UNIQUE INDEX user_changes_email_in_flight ON user_changes (lower(email))
    WHERE email IS NOT NULL AND state IN ('pending', 'provider_done', 'compensating');
CREATE INDEX user_changes_open ON user_changes (updated_at)
    WHERE state IN ('pending', 'provider_done', 'compensating');
CREATE INDEX user_changes_finished ON user_changes (updated_at)
    WHERE state IN ('completed', 'failed', 'compensated');
