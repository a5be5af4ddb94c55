-- The analytics service's read models: the users read model (iam.user.v1
-- and iam.user-role.v1) for token checks, each task's title (task.v1), the
-- accounting transactions applied (accounting.transaction.v1), and the
-- aggregates the reports read, kept in the transaction that applies one.
-- No report scans `ledger_transaction`: each reads a few rows by key.

-- Accounts as their latest account and grant events left them; each topic
-- carries its own version and is compared only with it.
CREATE TABLE users (
    id           UUID PRIMARY KEY,
    username     TEXT,
    email        TEXT,
    is_active    BOOLEAN     NOT NULL DEFAULT FALSE,
    roles        TEXT[]      NOT NULL DEFAULT '{}',
    -- NULL until the first grant event: the token's word stands.
    scopes       TEXT[],
    user_version BIGINT      NOT NULL DEFAULT 0,
    role_version BIGINT      NOT NULL DEFAULT 0,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Each task's title as its latest event (by the envelope's version) left
-- it; a deleted task keeps its row, since rewards paid still name it.
CREATE TABLE task (
    id         UUID PRIMARY KEY,
    title      TEXT        NOT NULL,
    version    BIGINT      NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Every transaction applied, once: its id is the key that makes a
-- replayed or duplicated event change nothing. `version` is the
-- envelope's (the ledger's sequence number).
CREATE TABLE ledger_transaction (
    id                  UUID PRIMARY KEY,
    account_id          UUID        NOT NULL,
    kind                TEXT        NOT NULL,
    amount_cents        BIGINT      NOT NULL,
    balance_after_cents BIGINT      NOT NULL,
    task_id             UUID,
    business_day        DATE        NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    version             BIGINT      NOT NULL
);

-- Fees collected and rewards paid per business day (both positive).
CREATE TABLE day_earnings (
    day           DATE PRIMARY KEY,
    fees_cents    BIGINT NOT NULL DEFAULT 0,
    rewards_cents BIGINT NOT NULL DEFAULT 0
);

-- Each account's balance after its latest transaction (highest version).
CREATE TABLE account_balance (
    account_id    UUID PRIMARY KEY,
    balance_cents BIGINT NOT NULL,
    version       BIGINT NOT NULL
);
-- The count of workers in debt reads only this (small) index.
CREATE INDEX account_balance_negative_idx ON account_balance (account_id)
    WHERE balance_cents < 0;

-- The highest reward paid on each business day, with its task; on a tie
-- the lower transaction id holds, whatever the order of arrival.
CREATE TABLE day_top_reward (
    day            DATE PRIMARY KEY,
    transaction_id UUID   NOT NULL,
    task_id        UUID,
    amount_cents   BIGINT NOT NULL
);
