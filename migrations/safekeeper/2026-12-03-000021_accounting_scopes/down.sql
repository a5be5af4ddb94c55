-- Roles and clients given the scopes lose them with them (ON DELETE CASCADE).
DELETE FROM role WHERE name = 'Accountant'
    AND NOT EXISTS (SELECT 1 FROM user_role ur WHERE ur.role_id = role.id);
DELETE FROM scope
WHERE name IN ('read:accounting', 'su_read:accounting', 'close:accounting', 'read:analytics');
DELETE FROM permission
WHERE name IN ('accounting.read', 'accounting.su_read', 'accounting.close', 'analytics.read');
DELETE FROM permission_object o WHERE name IN ('accounting', 'analytics')
    AND NOT EXISTS (SELECT 1 FROM permission p WHERE p.object_id = o.id);
DELETE FROM permission_action a WHERE name = 'close'
    AND NOT EXISTS (SELECT 1 FROM permission p WHERE p.action_id = a.id);
