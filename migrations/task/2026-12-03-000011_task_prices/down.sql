DROP VIEW task_view;
CREATE VIEW task_view AS
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
       uu.username    AS updated_by
FROM task t
LEFT JOIN task_type ty     ON ty.id = t.type_id
LEFT JOIN task_severity sv ON sv.id = t.severity_id
LEFT JOIN task_status st   ON st.id = t.status_id
LEFT JOIN users cu         ON cu.id = t.creator
LEFT JOIN users au         ON au.id = t.assignee
LEFT JOIN users uu         ON uu.id = t.updated_by;
ALTER TABLE task
    DROP COLUMN price_cents,
    DROP COLUMN assignment_fee_cents,
    DROP COLUMN completion_reward_cents,
    DROP COLUMN version;
