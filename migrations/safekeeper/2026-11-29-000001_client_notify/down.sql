-- The triggers depend on the function and go with it.
DROP FUNCTION safekeeper_clients_notify() CASCADE;
