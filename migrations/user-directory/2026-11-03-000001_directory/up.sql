-- The user directory: organizations (row-level tenancy: every tenant row
-- carries its organization's id), users linked to the identity provider by
-- reference_id, memberships, the creation saga, provider events and imports.

CREATE TABLE organizations (
    id                 UUID PRIMARY KEY,
    name               TEXT        NOT NULL,
    -- 'creating' while its admin account is being made in the provider.
    status             TEXT        NOT NULL CHECK (status IN ('creating', 'active')),
    admin_email        TEXT        NOT NULL,
    -- What the admin signs in with at the provider (authenticator username
    -- or WorkOS email), fixed at creation so an email change keeps it.
    admin_login        TEXT        NOT NULL,
    admin_reference_id TEXT,
    version            BIGINT      NOT NULL DEFAULT 1,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX organizations_name_key ON organizations (lower(name));
CREATE UNIQUE INDEX organizations_admin_email_key ON organizations (lower(admin_email));

-- The tenant's own storage (the seed's collection per organization).
CREATE TABLE tenant_data (
    organization_id UUID        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    key             TEXT        NOT NULL,
    value           JSONB       NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, key)
);

CREATE TABLE users (
    id                  UUID PRIMARY KEY,
    email               TEXT        NOT NULL,
    first_name          TEXT        NOT NULL,
    last_name           TEXT        NOT NULL,
    reference_id        TEXT        NOT NULL,
    provider_login      TEXT        NOT NULL,
    is_active           BOOLEAN     NOT NULL DEFAULT TRUE,
    -- Newest provider state applied: WorkOS updated_at, or the
    -- authenticator's event version.
    provider_updated_at TIMESTAMPTZ,
    provider_version    BIGINT,
    version             BIGINT      NOT NULL DEFAULT 1,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A deleted user stays as a tombstone so a late, older event cannot
    -- bring it back.
    deleted_at          TIMESTAMPTZ
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX users_reference_key ON users (reference_id);

CREATE TABLE memberships (
    id                  UUID PRIMARY KEY,
    user_id             UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    organization_id     UUID        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    role                TEXT        NOT NULL,
    status              TEXT        NOT NULL CHECK (status IN ('active', 'inactive', 'pending', 'deleted')),
    reference_id        TEXT,
    provider_updated_at TIMESTAMPTZ,
    version             BIGINT      NOT NULL DEFAULT 1,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (user_id, organization_id)
);
CREATE UNIQUE INDEX memberships_reference_key ON memberships (reference_id);
CREATE INDEX memberships_by_org ON memberships (organization_id, role);

-- The creation saga: recorded before the first provider call, moved
-- through its steps; what does not complete is compensated.
CREATE TABLE user_creations (
    id                       UUID PRIMARY KEY,
    email                    TEXT        NOT NULL,
    provider_login           TEXT        NOT NULL,
    organization_id          UUID        NOT NULL,
    role                     TEXT        NOT NULL,
    state                    TEXT        NOT NULL CHECK (state IN ('pending', 'user_created', 'membership_created', 'completed', 'compensated', 'failed')),
    reference_id             TEXT,
    membership_reference_id  TEXT,
    user_id                  UUID,
    last_error               TEXT,
    created_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at               TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX user_creations_in_flight ON user_creations (lower(email))
    WHERE state IN ('pending', 'user_created', 'membership_created');
CREATE INDEX user_creations_open ON user_creations (updated_at)
    WHERE state IN ('pending', 'user_created', 'membership_created');

-- Provider work that must happen eventually (compensations, removals).
CREATE TABLE provider_tasks (
    id              BIGSERIAL PRIMARY KEY,
    kind            TEXT        NOT NULL CHECK (kind IN ('remove_user')),
    reference_id    TEXT        NOT NULL,
    attempts        INT         NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    done_at         TIMESTAMPTZ
);
CREATE INDEX provider_tasks_due ON provider_tasks (next_attempt_at) WHERE done_at IS NULL;

-- WorkOS events, from webhooks or the Events API: stored first, applied
-- once each, in the background.
CREATE TABLE provider_events (
    id              TEXT PRIMARY KEY,
    event           TEXT        NOT NULL,
    payload         JSONB       NOT NULL,
    source          TEXT        NOT NULL CHECK (source IN ('webhook', 'events_api')),
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts        INT         NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_at      TIMESTAMPTZ,
    outcome         TEXT
);
CREATE INDEX provider_events_pending ON provider_events (next_attempt_at) WHERE applied_at IS NULL;

CREATE TABLE sync_cursors (
    name       TEXT PRIMARY KEY,
    cursor     TEXT        NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE import_jobs (
    id              UUID PRIMARY KEY,
    organization_id UUID        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    status          TEXT        NOT NULL CHECK (status IN ('running', 'finished')),
    total           INT         NOT NULL,
    processed       INT         NOT NULL DEFAULT 0,
    created         INT         NOT NULL DEFAULT 0,
    existing        INT         NOT NULL DEFAULT 0,
    failed          INT         NOT NULL DEFAULT 0,
    -- The rows still to run (cleared when finished: they may hold hashes).
    input           JSONB,
    results         JSONB       NOT NULL DEFAULT '[]',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at     TIMESTAMPTZ
);
