-- `login:relay`: a first-party sign-in page (the safekeeper's own, the
-- directory's /admin/login) may tell the authenticator the end user's
-- address. Given to clients, never to a role: no user needs it. An
-- administrator may have created any of these already.
INSERT INTO permission_object (name) VALUES ('login') ON CONFLICT (name) DO NOTHING;
INSERT INTO permission_action (name) VALUES ('relay') ON CONFLICT (name) DO NOTHING;
INSERT INTO scope (name, description)
VALUES ('login:relay', 'Relay an end user''s sign-in to the authenticator, naming their address')
ON CONFLICT (name) DO NOTHING;
INSERT INTO permission (name, object_id, action_id)
SELECT 'login.relay', o.id, a.id
FROM permission_object o, permission_action a
WHERE o.name = 'login' AND a.name = 'relay'
ON CONFLICT (name) DO NOTHING;
INSERT INTO permission_scope (permission_id, scope_id)
SELECT p.id, s.id FROM permission p, scope s
WHERE p.name = 'login.relay' AND s.name = 'login:relay'
ON CONFLICT DO NOTHING;
