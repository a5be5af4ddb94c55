-- The operators' bootstrap token (ORG_BOOTSTRAP_TOKEN) creates one
-- configured organization, once: its SHA-256 is kept here when used.
-- Operators create the others with a superuser's session.
CREATE TABLE bootstrap_token_uses (
    token_sha256 BYTEA PRIMARY KEY,
    organization TEXT NOT NULL,
    used_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
