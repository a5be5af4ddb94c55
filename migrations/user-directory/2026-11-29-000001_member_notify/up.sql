-- Every change of a user or a membership is announced (delivered at
-- commit) on `directory_members` with the user's id, and every change of
-- an organization with `*`, so that each replica's in-memory copy of
-- `GET /v1/users/{id}` drops what changed. Statement-level with transition
-- tables: an import of a thousand users sends one notification per user
-- in one pass, not a trigger call per row. The column naming the user is
-- the trigger's argument.
CREATE FUNCTION directory_members_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    col TEXT := TG_ARGV[0];
BEGIN
    IF TG_OP = 'TRUNCATE' OR col IS NULL THEN
        PERFORM pg_notify('directory_members', '*');
    ELSIF TG_OP = 'INSERT' THEN
        EXECUTE format('SELECT pg_notify(''directory_members'', u::text)
                        FROM (SELECT DISTINCT %I AS u FROM new_rows) s', col);
    ELSIF TG_OP = 'UPDATE' THEN
        EXECUTE format('SELECT pg_notify(''directory_members'', u::text)
                        FROM (SELECT %I AS u FROM old_rows UNION SELECT %I FROM new_rows) s',
                       col, col);
    ELSE
        EXECUTE format('SELECT pg_notify(''directory_members'', u::text)
                        FROM (SELECT DISTINCT %I AS u FROM old_rows) s', col);
    END IF;
    RETURN NULL;
END
$$;

-- The same four triggers on both tables: (table, column naming the user).
DO $$
DECLARE
    t RECORD;
BEGIN
    FOR t IN SELECT * FROM (VALUES ('users', 'id'), ('memberships', 'user_id')) v (tbl, col) LOOP
        EXECUTE format('CREATE TRIGGER %1$s_members_insert AFTER INSERT ON %1$I
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION directory_members_notify(%2$L)', t.tbl, t.col);
        EXECUTE format('CREATE TRIGGER %1$s_members_update AFTER UPDATE ON %1$I
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION directory_members_notify(%2$L)', t.tbl, t.col);
        EXECUTE format('CREATE TRIGGER %1$s_members_delete AFTER DELETE ON %1$I
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION directory_members_notify(%2$L)', t.tbl, t.col);
        EXECUTE format('CREATE TRIGGER %1$s_members_truncate AFTER TRUNCATE ON %1$I
            FOR EACH STATEMENT EXECUTE FUNCTION directory_members_notify()', t.tbl);
    END LOOP;
END
$$;

-- An organization's change (its admin, its status) reaches every cached
-- member of it; organizations change rarely, so all are dropped.
CREATE TRIGGER organizations_members_change AFTER UPDATE OR DELETE OR TRUNCATE ON organizations
    FOR EACH STATEMENT EXECUTE FUNCTION directory_members_notify();
