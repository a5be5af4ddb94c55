-- The dashboard's sign-ins under way and its sessions (crates/dashboard).
-- Only SHA-256 digests of the values the browser holds are stored.
CREATE TABLE dashboard_logins (
    state_hash TEXT PRIMARY KEY,
    verifier   TEXT        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX dashboard_logins_expiry ON dashboard_logins (expires_at);

CREATE TABLE dashboard_sessions (
    id_hash       TEXT PRIMARY KEY,
    subject       TEXT        NOT NULL,
    name          TEXT        NOT NULL,
    access_token  TEXT        NOT NULL,
    refresh_token TEXT,
    expires_at    TIMESTAMPTZ NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);
