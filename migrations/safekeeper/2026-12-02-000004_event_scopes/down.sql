-- Clients given the scopes lose them with them (ON DELETE CASCADE).
DELETE FROM scope WHERE name IN ('write:event', 'read:restriction');
DELETE FROM permission WHERE name IN ('event.write', 'restriction.read')
    AND NOT EXISTS (SELECT 1 FROM role_permission rp WHERE rp.permission_id = permission.id);
DELETE FROM permission_object o WHERE name IN ('event', 'restriction')
    AND NOT EXISTS (SELECT 1 FROM permission p WHERE p.object_id = o.id);
DELETE FROM permission_action a WHERE name IN ('write', 'read')
    AND NOT EXISTS (SELECT 1 FROM permission p WHERE p.action_id = a.id);
