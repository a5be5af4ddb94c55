-- Prices (issue 19): a task's price in integer cents, set at creation, and
-- the assignment fee and completion reward derived from it by the ratios
-- in force when the price was set (TASK_ASSIGNMENT_FEE_RATIO,
-- TASK_COMPLETION_REWARD_RATIO). `version` counts the task's changes: the
-- `version` of its task.v1 events. Existing tasks take the default price
-- and ratios (1000 cents, 0.5, 1.0) and version 0: their first change is
-- their first event (so a consumer may see a task first by a change).
ALTER TABLE task
    ADD COLUMN price_cents BIGINT NOT NULL DEFAULT 1000
        CHECK (price_cents BETWEEN 1 AND 100000000),
    ADD COLUMN assignment_fee_cents BIGINT NOT NULL DEFAULT 500
        CHECK (assignment_fee_cents >= 0),
    ADD COLUMN completion_reward_cents BIGINT NOT NULL DEFAULT 1000
        CHECK (completion_reward_cents >= 0),
    ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
-- The service always sets all four; the defaults are kept for rows written
-- by bulk SQL (the bench's seeding, tests), which then carry the default
-- price and ratios.

-- The view shows them too (new columns go at the end).
CREATE OR REPLACE VIEW task_view AS
SELECT t.id,
       t.title,
       t.description,
       t.creator      AS creator_id,
       cu.username    AS creator,
       t.assignee     AS assignee_id,
       au.username    AS assignee,
       t.type_id,
       ty.name        AS type_name,
       t.severity_id,
       sv.name        AS severity_name,
       t.status_id,
       st.name        AS status_name,
       t.parent,
       t.due_date,
       t.created_at,
       t.updated_at,
       t.updated_by   AS updated_by_id,
       uu.username    AS updated_by,
       t.price_cents,
       t.assignment_fee_cents,
       t.completion_reward_cents,
       t.version
FROM task t
LEFT JOIN task_type ty     ON ty.id = t.type_id
LEFT JOIN task_severity sv ON sv.id = t.severity_id
LEFT JOIN task_status st   ON st.id = t.status_id
LEFT JOIN users cu         ON cu.id = t.creator
LEFT JOIN users au         ON au.id = t.assignee
LEFT JOIN users uu         ON uu.id = t.updated_by;
