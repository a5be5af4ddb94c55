-- The triggers depend on the function and go with it.
DROP FUNCTION directory_members_notify() CASCADE;
