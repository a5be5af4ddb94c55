-- One row per user the service knows: from a rule event or from the
-- account stream (iam.user.v1). Every event for a user locks this row first,
-- so counters never lose updates. The checks read only this row.
CREATE TABLE users (
    user_id                  TEXT        PRIMARY KEY,
    scam_flags               BIGINT      NOT NULL DEFAULT 0,
    card_count               BIGINT      NOT NULL DEFAULT 0,
    zip_count                BIGINT      NOT NULL DEFAULT 0,
    total_spend_cents        BIGINT      NOT NULL DEFAULT 0,
    chargeback_cents         BIGINT      NOT NULL DEFAULT 0,
    -- Set while the rule restricts the user (NULL: not restricted).
    scam_restricted_at       TIMESTAMPTZ,
    zip_restricted_at        TIMESTAMPTZ,
    chargeback_restricted_at TIMESTAMPTZ,
    -- From iam.user.v1; account_version is the last version applied.
    is_active                BOOLEAN     NOT NULL DEFAULT TRUE,
    account_version          BIGINT      NOT NULL DEFAULT 0,
    -- Version of the user's access.restriction.v1 events.
    version                  BIGINT      NOT NULL DEFAULT 0,
    -- First rule event: the user counts in the tripwire's population.
    first_event_at           TIMESTAMPTZ,
    created_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT users_user_id_length CHECK (char_length(user_id) BETWEEN 1 AND 128),
    CONSTRAINT users_counters_not_negative CHECK (
        scam_flags >= 0 AND card_count >= 0 AND zip_count >= 0
        AND total_spend_cents >= 0 AND chargeback_cents >= 0)
);

-- A card is (user, zip, last four); a duplicate is not added twice.
CREATE TABLE cards (
    user_id           TEXT        NOT NULL REFERENCES users (user_id),
    zip_code          TEXT        NOT NULL,
    last_four_digits  TEXT        NOT NULL,
    total_spend_cents BIGINT      NOT NULL CHECK (total_spend_cents >= 0),
    added_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, zip_code, last_four_digits)
);

-- Every accepted event with its outcome. A client's event_id is unique:
-- a resent event answers the stored outcome and changes nothing.
CREATE TABLE events (
    id          BIGSERIAL   PRIMARY KEY,
    event_id    TEXT        UNIQUE,
    user_id     TEXT        NOT NULL,
    name        TEXT        NOT NULL,
    properties  JSONB       NOT NULL,
    outcome     JSONB       NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every restriction and lift, by an event, an operator or the account
-- stream. The tripwire counts the users a rule newly restricted from here.
CREATE TABLE restriction_log (
    id       BIGSERIAL   PRIMARY KEY,
    user_id  TEXT        NOT NULL,
    rule     TEXT        NOT NULL,
    action   TEXT        NOT NULL CHECK (action IN ('restrict', 'lift')),
    cause    TEXT        NOT NULL CHECK (cause IN ('event', 'operator', 'account')),
    actor    TEXT,
    reason   TEXT        NOT NULL,
    at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX restriction_log_user_idx ON restriction_log (user_id, id);
CREATE INDEX restriction_log_window_idx ON restriction_log (rule, at, user_id)
    WHERE action = 'restrict' AND cause = 'event';

-- Tripwire state of each rule.
CREATE TABLE rules (
    rule            TEXT        PRIMARY KEY,
    tripped_at      TIMESTAMPTZ,
    -- The rule's restrictions are ignored by the checks until then.
    suspended_until TIMESTAMPTZ,
    -- The window counts restrictions after the last reset only.
    last_reset_at   TIMESTAMPTZ,
    last_reset_by   TEXT,
    trip_count      BIGINT      NOT NULL DEFAULT 0,
    version         BIGINT      NOT NULL DEFAULT 0
);

INSERT INTO rules (rule) VALUES ('scam_flags'), ('card_zip_ratio'), ('chargeback_ratio');

-- How many users have sent a rule event (the tripwire's population),
-- spread over shards so that new users do not queue on one row.
CREATE TABLE population (
    shard SMALLINT PRIMARY KEY,
    users BIGINT   NOT NULL DEFAULT 0
);

INSERT INTO population (shard) SELECT generate_series(0, 15);
