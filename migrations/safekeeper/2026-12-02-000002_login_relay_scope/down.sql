-- Clients given the scope lose it with it (ON DELETE CASCADE).
DELETE FROM scope WHERE name = 'login:relay';
DELETE FROM permission WHERE name = 'login.relay'
    AND NOT EXISTS (SELECT 1 FROM role_permission rp WHERE rp.permission_id = permission.id);
DELETE FROM permission_object o WHERE name = 'login'
    AND NOT EXISTS (SELECT 1 FROM permission p WHERE p.object_id = o.id);
DELETE FROM permission_action a WHERE name = 'relay'
    AND NOT EXISTS (SELECT 1 FROM permission p WHERE p.action_id = a.id);
