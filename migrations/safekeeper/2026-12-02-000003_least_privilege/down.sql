-- Clients given the scopes lose them with them (ON DELETE CASCADE).
DELETE FROM scope WHERE name IN ('provision:user', 'introspect:token');
DELETE FROM permission WHERE name IN ('user.provision', 'token.introspect')
    AND NOT EXISTS (SELECT 1 FROM role_permission rp WHERE rp.permission_id = permission.id);
DELETE FROM permission_object o WHERE name = 'token'
    AND NOT EXISTS (SELECT 1 FROM permission p WHERE p.object_id = o.id);
DELETE FROM permission_action a WHERE name IN ('provision', 'introspect')
    AND NOT EXISTS (SELECT 1 FROM permission p WHERE p.action_id = a.id);
ALTER TABLE client DROP COLUMN pkce_required;
