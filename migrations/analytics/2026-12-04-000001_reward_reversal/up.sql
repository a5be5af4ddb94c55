-- A reward reversed by accounting (a `correction` for its task, when the
-- task left Completed) names the correction that reversed it; the day's
-- highest reward is then taken among the rewards not reversed.
ALTER TABLE ledger_transaction ADD COLUMN reversed_by UUID;
-- The reward a correction reverses: its task's latest, by version.
CREATE INDEX ledger_transaction_task_reward_idx ON ledger_transaction (task_id, version)
    WHERE kind = 'reward';
-- A day's highest reward not reversed, when the one shown is reversed.
CREATE INDEX ledger_transaction_day_reward_idx
    ON ledger_transaction (business_day, amount_cents DESC, id)
    WHERE kind = 'reward' AND reversed_by IS NULL;
