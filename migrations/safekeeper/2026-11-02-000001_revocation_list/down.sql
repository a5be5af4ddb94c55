DROP TABLE revoked_access_token;
CREATE TABLE access_token (
    jti        UUID PRIMARY KEY,
    family_id  UUID REFERENCES grant_family (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    user_id    UUID,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
