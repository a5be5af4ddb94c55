CREATE INDEX account_balance_negative_idx ON account_balance (account_id)
    WHERE balance_cents < 0;
DROP TABLE negative_balance_count;
