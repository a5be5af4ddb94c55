-- A correction that reverses an entry names it (a completion reward, when
-- its task left Completed): an entry is reversed at most once. Adding a
-- nullable column rewrites no row, so the append-only trigger is not
-- involved.
ALTER TABLE ledger_entry ADD COLUMN reverses UUID REFERENCES ledger_entry (id);
CREATE UNIQUE INDEX ledger_entry_reverses_idx ON ledger_entry (reverses)
    WHERE reverses IS NOT NULL;
-- The latest reward of a task, found when the task leaves Completed.
CREATE INDEX ledger_entry_task_reward_idx ON ledger_entry (task_id, seq)
    WHERE kind = 'reward';
