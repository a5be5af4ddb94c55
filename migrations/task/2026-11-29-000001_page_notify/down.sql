-- The triggers depend on the function and go with it.
DROP FUNCTION task_pages_notify() CASCADE;
