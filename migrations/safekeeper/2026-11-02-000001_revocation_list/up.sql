-- Access tokens are no longer recorded when issued (a write per token
-- capped issuance far below the signing rate). A token carries its grant
-- family (`sid`) and is checked against this list of revoked token ids and
-- against its family's revocation.
DROP TABLE access_token;

CREATE TABLE revoked_access_token (
    jti        UUID PRIMARY KEY,
    client_id  TEXT        NOT NULL,
    -- Rows can be deleted once the token would have expired anyway.
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX revoked_access_token_expiry_idx ON revoked_access_token (expires_at);
