-- The accounting service's tables: the users read model (iam.user.v1 and
-- iam.user-role.v1), the append-only ledger with each account's balance,
-- and the days closed.

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

-- Every entry of every account, in the order applied; also the audit log:
-- rows are never updated or deleted (the trigger below refuses it).
CREATE TABLE ledger_entry (
    seq                 BIGSERIAL PRIMARY KEY,
    id                  UUID        NOT NULL UNIQUE,
    account_id          UUID        NOT NULL,
    kind                TEXT        NOT NULL CHECK (kind IN ('fee', 'reward', 'payout', 'correction')),
    amount_cents        BIGINT      NOT NULL,
    balance_after_cents BIGINT      NOT NULL,
    task_id             UUID,
    description         TEXT        NOT NULL,
    business_day        DATE        NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- What the entry applies, once: `task:<task id>:<event version>:<kind>`
    -- or `payout:<day>:<account id>`.
    source_key          TEXT        NOT NULL UNIQUE
);
CREATE INDEX ledger_entry_account_idx ON ledger_entry (account_id, seq);
CREATE INDEX ledger_entry_day_idx ON ledger_entry (business_day, kind);

CREATE FUNCTION ledger_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % is refused', TG_OP;
END
$$;
CREATE TRIGGER ledger_entry_append_only
    BEFORE UPDATE OR DELETE ON ledger_entry
    FOR EACH ROW EXECUTE FUNCTION ledger_entry_append_only();
CREATE TRIGGER ledger_entry_no_truncate
    BEFORE TRUNCATE ON ledger_entry
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entry_append_only();

-- Each account's balance: the sum of its entries, kept in the transaction
-- that appends one.
CREATE TABLE balance (
    account_id    UUID PRIMARY KEY,
    balance_cents BIGINT      NOT NULL DEFAULT 0,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A business day closed: its payouts were made, once.
CREATE TABLE day_close (
    day         DATE PRIMARY KEY,
    closed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    paid_count  INT         NOT NULL,
    paid_cents  BIGINT      NOT NULL
);
