-- Least privilege for service clients (issue 16).
--
-- PKCE is required of every client in the code flow (RFC 9700 2.1.1),
-- confidential ones too, unless an administrator turns it off for one.
ALTER TABLE client ADD COLUMN pkce_required BOOLEAN NOT NULL DEFAULT TRUE;

-- `provision:user`: what the directory needs at the authenticator (create,
-- import, activate, deactivate and edit ORDINARY accounts). `admin:user`
-- stays for people: a client's own token never gets its powers.
-- `introspect:token`: a resource server may introspect tokens issued to
-- other clients. Both are given to clients, never to a role. An
-- administrator may have created any of these already.
INSERT INTO permission_object (name) VALUES ('user'), ('token') ON CONFLICT (name) DO NOTHING;
INSERT INTO permission_action (name) VALUES ('provision'), ('introspect')
ON CONFLICT (name) DO NOTHING;
INSERT INTO scope (name, description) VALUES
    ('provision:user', 'Create, import, activate, deactivate and edit ordinary accounts (not superusers, passwords of superusers or roles)'),
    ('introspect:token', 'Introspect tokens issued to other clients (a resource server)')
ON CONFLICT (name) DO NOTHING;
INSERT INTO permission (name, object_id, action_id)
SELECT o.name || '.' || a.name, o.id, a.id
FROM permission_object o, permission_action a
WHERE (o.name = 'user' AND a.name = 'provision') OR (o.name = 'token' AND a.name = 'introspect')
ON CONFLICT (name) DO NOTHING;
INSERT INTO permission_scope (permission_id, scope_id)
SELECT p.id, s.id FROM permission p, scope s
WHERE (p.name = 'user.provision' AND s.name = 'provision:user')
   OR (p.name = 'token.introspect' AND s.name = 'introspect:token')
ON CONFLICT DO NOTHING;

-- A service client that held `admin:user` (the directory's, before) keeps
-- working: its own tokens no longer get anything from `admin:user`, so it
-- may now obtain `provision:user` instead.
INSERT INTO client_scope (client_id, scope_id)
SELECT cs.client_id, p.id
FROM client_scope cs
JOIN scope a ON a.id = cs.scope_id AND a.name = 'admin:user'
JOIN client c ON c.id = cs.client_id AND 'client_credentials' = ANY (c.grant_types)
CROSS JOIN scope p
WHERE p.name = 'provision:user'
ON CONFLICT DO NOTHING;
