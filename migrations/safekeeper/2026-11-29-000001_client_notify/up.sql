-- Every change of what a client's authentication reads (the client, the
-- scopes it may obtain, and the RBAC catalogue those come from) is
-- announced on `safekeeper_clients` (delivered at commit), so that each
-- replica's in-memory clients are dropped at once. Administrative changes
-- are rare: one statement-level trigger per table, and every cached client
-- is dropped.
CREATE FUNCTION safekeeper_clients_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('safekeeper_clients', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['client', 'client_scope', 'scope', 'role', 'permission',
                             'permission_scope', 'role_permission'] LOOP
        EXECUTE format('CREATE TRIGGER %1$s_clients_notify
            AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %1$I
            FOR EACH STATEMENT EXECUTE FUNCTION safekeeper_clients_notify()', t);
    END LOOP;
END
$$;
