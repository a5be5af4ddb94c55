-- The summary's rollup: how many tasks each assignee has per calendar
-- month (UTC) of creation and per status. Kept by triggers in the same
-- transaction as every write to `task` (creation, status change,
-- reassignment, and any SQL run by hand), so it is never behind. The
-- summary sums whole months here and reads only the partial months at the
-- edges of its range from `task`. Rows that fall to zero are kept (a sum
-- of zero counts nothing).
CREATE TABLE task_rollup (
    assignee  UUID        NOT NULL,
    month     TIMESTAMPTZ NOT NULL,
    status_id INT         NOT NULL,
    tasks     INT         NOT NULL,
    PRIMARY KEY (assignee, month, status_id)
);

-- No write may slip between the backfill and the triggers.
LOCK TABLE task IN SHARE ROW EXCLUSIVE MODE;

INSERT INTO task_rollup (assignee, month, status_id, tasks)
SELECT assignee, date_trunc('month', created_at, 'UTC'), status_id, count(*)
FROM task
WHERE assignee IS NOT NULL
GROUP BY 1, 2, 3;

-- Statement-level triggers with transition tables: a bulk insert costs one
-- grouped upsert, not one per row. Keys are upserted in order so that two
-- writers touching the same rows lock them in the same order.
CREATE FUNCTION task_rollup_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_rollup AS r (assignee, month, status_id, tasks)
    SELECT assignee, date_trunc('month', created_at, 'UTC'), status_id, count(*)
    FROM new_rows
    WHERE assignee IS NOT NULL
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (assignee, month, status_id) DO UPDATE SET tasks = r.tasks + EXCLUDED.tasks;
    RETURN NULL;
END
$$;

CREATE FUNCTION task_rollup_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_rollup AS r (assignee, month, status_id, tasks)
    SELECT assignee, month, status_id, sum(d)
    FROM (
        SELECT assignee, date_trunc('month', created_at, 'UTC') AS month, status_id, -1 AS d
        FROM old_rows WHERE assignee IS NOT NULL
        UNION ALL
        SELECT assignee, date_trunc('month', created_at, 'UTC'), status_id, 1
        FROM new_rows WHERE assignee IS NOT NULL
    ) changes
    GROUP BY 1, 2, 3
    HAVING sum(d) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (assignee, month, status_id) DO UPDATE SET tasks = r.tasks + EXCLUDED.tasks;
    RETURN NULL;
END
$$;

CREATE FUNCTION task_rollup_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_rollup AS r (assignee, month, status_id, tasks)
    SELECT assignee, date_trunc('month', created_at, 'UTC'), status_id, -count(*)
    FROM old_rows
    WHERE assignee IS NOT NULL
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (assignee, month, status_id) DO UPDATE SET tasks = r.tasks + EXCLUDED.tasks;
    RETURN NULL;
END
$$;

CREATE FUNCTION task_rollup_on_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE task_rollup;
    RETURN NULL;
END
$$;

CREATE TRIGGER task_rollup_insert AFTER INSERT ON task
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION task_rollup_on_insert();
CREATE TRIGGER task_rollup_update AFTER UPDATE ON task
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION task_rollup_on_update();
CREATE TRIGGER task_rollup_delete AFTER DELETE ON task
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION task_rollup_on_delete();
CREATE TRIGGER task_rollup_truncate AFTER TRUNCATE ON task
    FOR EACH STATEMENT EXECUTE FUNCTION task_rollup_on_truncate();

-- Every change of the users read model is announced (delivered at
-- commit) on `task_users` with the user's id, or `*` when the table is
-- emptied, so that each replica's in-memory copy of the callers can drop
-- what changed.
CREATE FUNCTION users_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('task_users', '*');
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('task_users', OLD.id::text);
    ELSE
        PERFORM pg_notify('task_users', NEW.id::text);
        IF TG_OP = 'UPDATE' AND OLD.id <> NEW.id THEN
            PERFORM pg_notify('task_users', OLD.id::text);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_notify_row AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION users_notify();
CREATE TRIGGER users_notify_truncate AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION users_notify();
