-- The access-rule service's scopes, given to clients, never to a role:
-- `write:event` lets a producer post events (`POST /event`);
-- `read:restriction` lets a caller use `/canmessage` and `/canpurchase`
-- where access-rule runs with REQUIRE_READ_TOKEN=true. An administrator
-- may have created any of these already.
INSERT INTO permission_object (name) VALUES ('event'), ('restriction')
ON CONFLICT (name) DO NOTHING;
INSERT INTO permission_action (name) VALUES ('write'), ('read')
ON CONFLICT (name) DO NOTHING;
INSERT INTO scope (name, description) VALUES
    ('write:event', 'Post events about users to the access-rule service'),
    ('read:restriction', 'Ask the access-rule service whether a user may message or purchase')
ON CONFLICT (name) DO NOTHING;
INSERT INTO permission (name, object_id, action_id)
SELECT p.name, o.id, a.id
FROM (VALUES ('event.write', 'event', 'write'),
             ('restriction.read', 'restriction', 'read')) AS p (name, object, action)
JOIN permission_object o ON o.name = p.object
JOIN permission_action a ON a.name = p.action
ON CONFLICT (name) DO NOTHING;
INSERT INTO permission_scope (permission_id, scope_id)
SELECT p.id, s.id
FROM (VALUES ('event.write', 'write:event'),
             ('restriction.read', 'read:restriction')) AS m (permission, scope)
JOIN permission p ON p.name = m.permission
JOIN scope s ON s.name = m.scope
ON CONFLICT DO NOTHING;
