-- The number of workers whose latest balance is below zero, kept as an
-- aggregate: the report reads this one row instead of counting the
-- accounts in debt on every request. `apply_transaction` moves it in the
-- transaction that replaces an account's balance, when the balance
-- crosses zero (a late, older transaction replaces nothing and moves
-- nothing).
CREATE TABLE negative_balance_count (
    -- Always TRUE: the table holds exactly one row.
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    workers  BIGINT  NOT NULL CHECK (workers >= 0)
);

-- Counted from the balances already applied, so that a database migrated
-- with data reports the same figure as before. The lock keeps a writer
-- from changing a balance between the count and the commit.
LOCK TABLE account_balance IN SHARE MODE;
INSERT INTO negative_balance_count (workers)
SELECT count(*) FROM account_balance WHERE balance_cents < 0;

-- Nothing reads the accounts in debt one by one any more; the index only
-- cost every balance crossing zero a write.
DROP INDEX account_balance_negative_idx;
