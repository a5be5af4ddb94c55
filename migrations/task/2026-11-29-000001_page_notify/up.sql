-- Every change of `task` is announced (delivered at commit) on
-- `task_pages` with the assignee of each changed row, before and after,
-- or `*` when the table is emptied, so that each replica's in-memory
-- `/v1/task/own` pages of those assignees are dropped. Statement-level
-- with transition tables: a bulk insert sends one notification per
-- assignee, not one per row (PostgreSQL also folds identical ones in a
-- transaction).
CREATE FUNCTION task_pages_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('task_pages', '*');
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('task_pages', a::text)
        FROM (SELECT DISTINCT assignee AS a FROM new_rows WHERE assignee IS NOT NULL) s;
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM pg_notify('task_pages', a::text)
        FROM (SELECT assignee AS a FROM old_rows UNION SELECT assignee FROM new_rows) s
        WHERE a IS NOT NULL;
    ELSE
        PERFORM pg_notify('task_pages', a::text)
        FROM (SELECT DISTINCT assignee AS a FROM old_rows WHERE assignee IS NOT NULL) s;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER task_pages_insert AFTER INSERT ON task
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION task_pages_notify();
CREATE TRIGGER task_pages_update AFTER UPDATE ON task
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION task_pages_notify();
CREATE TRIGGER task_pages_delete AFTER DELETE ON task
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION task_pages_notify();
CREATE TRIGGER task_pages_truncate AFTER TRUNCATE ON task
    FOR EACH STATEMENT EXECUTE FUNCTION task_pages_notify();
