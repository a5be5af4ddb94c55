DROP TRIGGER task_pages_truncate ON task;
DROP TRIGGER task_pages_delete ON task;
DROP TRIGGER task_pages_update ON task;
DROP TRIGGER task_pages_insert ON task;
DROP FUNCTION task_pages_notify();
