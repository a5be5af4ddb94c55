CREATE TABLE accounts (
    id                  UUID PRIMARY KEY,
    username            TEXT        NOT NULL,
    email               TEXT        NOT NULL,
    -- NULL: no usable password yet (an invitation awaiting a reset).
    password_hash       TEXT,
    firstname           TEXT        NOT NULL DEFAULT '',
    lastname            TEXT        NOT NULL DEFAULT '',
    phone               TEXT        NOT NULL DEFAULT '',
    is_active           BOOLEAN     NOT NULL DEFAULT TRUE,
    is_superuser        BOOLEAN     NOT NULL DEFAULT FALSE,
    -- Increases with every change; carried in every iam.user.v1 event.
    version             BIGINT      NOT NULL DEFAULT 1,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    password_changed_at TIMESTAMPTZ,
    CONSTRAINT accounts_username_format CHECK (username ~ '^[a-z0-9._-]{3,64}$')
);

CREATE UNIQUE INDEX accounts_username_key ON accounts (username);
-- Emails are unique regardless of case.
CREATE UNIQUE INDEX accounts_email_key ON accounts (lower(email));
-- Listing pages by creation order; prefix search on username uses the
-- pattern-ops index.
CREATE INDEX accounts_created_idx ON accounts (created_at, id);
CREATE INDEX accounts_username_prefix_idx ON accounts (username text_pattern_ops);
