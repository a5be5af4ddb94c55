-- The accounting service's scopes (and analytics' read scope):
-- `read:accounting`   a worker's own balance and ledger;
-- `su_read:accounting` every worker's ledger and management's earnings;
-- `close:accounting`  run the daily close for a given day (operators);
-- `read:analytics`    the analytics service's reports.
-- A role `Accountant` reads everything in accounting; an Employee reads
-- their own; the admin role gets all four. An administrator may have
-- created any of these already.
INSERT INTO permission_object (name) VALUES ('accounting'), ('analytics')
ON CONFLICT (name) DO NOTHING;
INSERT INTO permission_action (name) VALUES ('read'), ('su_read'), ('close')
ON CONFLICT (name) DO NOTHING;
INSERT INTO scope (name, description) VALUES
    ('read:accounting', 'Read your own balance and ledger'),
    ('su_read:accounting', 'Read every worker''s ledger and the earnings'),
    ('close:accounting', 'Run the accounting''s daily close for a day'),
    ('read:analytics', 'Read the analytics reports')
ON CONFLICT (name) DO NOTHING;
INSERT INTO permission (name, object_id, action_id)
SELECT p.name, o.id, a.id
FROM (VALUES ('accounting.read', 'accounting', 'read'),
             ('accounting.su_read', 'accounting', 'su_read'),
             ('accounting.close', 'accounting', 'close'),
             ('analytics.read', 'analytics', 'read')) AS p (name, object, action)
JOIN permission_object o ON o.name = p.object
JOIN permission_action a ON a.name = p.action
ON CONFLICT (name) DO NOTHING;
INSERT INTO permission_scope (permission_id, scope_id)
SELECT p.id, s.id
FROM (VALUES ('accounting.read', 'read:accounting'),
             ('accounting.su_read', 'su_read:accounting'),
             ('accounting.close', 'close:accounting'),
             ('analytics.read', 'read:analytics')) AS m (permission, scope)
JOIN permission p ON p.name = m.permission
JOIN scope s ON s.name = m.scope
ON CONFLICT DO NOTHING;
INSERT INTO role (name, description)
VALUES ('Accountant', 'Reads every worker''s ledger and the earnings')
ON CONFLICT (name) DO NOTHING;
INSERT INTO role_permission (role_id, permission_id)
SELECT r.id, p.id
FROM (VALUES ('Accountant', 'accounting.read'),
             ('Accountant', 'accounting.su_read'),
             ('Employee', 'accounting.read'),
             ('admin', 'accounting.read'),
             ('admin', 'accounting.su_read'),
             ('admin', 'accounting.close'),
             ('admin', 'analytics.read')) AS m (role, permission)
JOIN role r ON r.name = m.role
JOIN permission p ON p.name = m.permission
ON CONFLICT DO NOTHING;
