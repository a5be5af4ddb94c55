-- Organization admins' refresh tokens (POST /admin/login, /admin/refresh).
-- A family is one sign-in and every token rotated from it; it carries what
-- a refresh is checked against: the admin account and its session epoch
-- at sign-in (a refresh fails once the account's epoch, from iam.user.v1,
-- is above it). Revoking the family ends all its tokens at once.
CREATE TABLE admin_refresh_families (
    id                 UUID PRIMARY KEY,
    organization_id    UUID        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    admin_reference_id TEXT        NOT NULL,
    session_epoch      BIGINT      NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at         TIMESTAMPTZ,
    revoked_reason     TEXT
);
CREATE INDEX admin_refresh_families_org ON admin_refresh_families (organization_id)
    WHERE revoked_at IS NULL;

-- Only the SHA-256 of a token is kept (tokens are 256 random bits: a
-- lookup by hash is the comparison). A token is spent by its one refresh;
-- a spent token presented again revokes its family (RFC 9700 4.14.2).
CREATE TABLE admin_refresh_tokens (
    token_sha256 BYTEA PRIMARY KEY,
    family_id    UUID        NOT NULL REFERENCES admin_refresh_families (id) ON DELETE CASCADE,
    issued_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL,
    spent_at     TIMESTAMPTZ
);
CREATE INDEX admin_refresh_tokens_family ON admin_refresh_tokens (family_id);
-- Pruning finds expired tokens by it.
CREATE INDEX admin_refresh_tokens_expiry ON admin_refresh_tokens (expires_at);
