DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['client', 'client_scope', 'scope', 'role', 'permission',
                             'permission_scope', 'role_permission'] LOOP
        EXECUTE format('DROP TRIGGER %1$s_clients_notify ON %1$I', t);
    END LOOP;
END
$$;
DROP FUNCTION safekeeper_clients_notify();
