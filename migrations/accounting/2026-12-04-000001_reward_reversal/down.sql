DROP INDEX ledger_entry_task_reward_idx;
DROP INDEX ledger_entry_reverses_idx;
ALTER TABLE ledger_entry DROP COLUMN reverses;
