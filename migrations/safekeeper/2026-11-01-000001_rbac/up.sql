-- The RBAC catalogue (seed model): user -> roles -> permissions -> object/action -> scopes.
CREATE TABLE role (
    id          SERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT ''
);

CREATE TABLE permission_object (
    id   SERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE permission_action (
    id   SERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE scope (
    id          SERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE CHECK (name ~ '^[a-z_]+:[a-z_]+$'),
    description TEXT NOT NULL DEFAULT ''
);

CREATE TABLE permission (
    id        SERIAL PRIMARY KEY,
    name      TEXT NOT NULL UNIQUE,
    object_id INT  NOT NULL REFERENCES permission_object (id),
    action_id INT  NOT NULL REFERENCES permission_action (id)
);

CREATE TABLE permission_scope (
    permission_id INT NOT NULL REFERENCES permission (id) ON DELETE CASCADE,
    scope_id      INT NOT NULL REFERENCES scope (id) ON DELETE CASCADE,
    PRIMARY KEY (permission_id, scope_id)
);
CREATE INDEX permission_scope_scope_idx ON permission_scope (scope_id);

CREATE TABLE role_permission (
    role_id       INT NOT NULL REFERENCES role (id) ON DELETE CASCADE,
    permission_id INT NOT NULL REFERENCES permission (id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, permission_id)
);
CREATE INDEX role_permission_permission_idx ON role_permission (permission_id);

-- Read model of the authenticator's accounts (iam.user.v1).
CREATE TABLE users (
    id          UUID PRIMARY KEY,
    username    TEXT    NOT NULL,
    is_active   BOOLEAN NOT NULL,
    is_superuser BOOLEAN NOT NULL DEFAULT FALSE,
    version     BIGINT  NOT NULL
);

CREATE TABLE user_role (
    user_id UUID NOT NULL,
    role_id INT  NOT NULL REFERENCES role (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_role_role_idx ON user_role (role_id);

-- Per-user version of the role set, carried by iam.user-role.v1 events.
CREATE TABLE user_role_version (
    user_id UUID PRIMARY KEY,
    version BIGINT NOT NULL
);

CREATE TABLE client (
    id            TEXT PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._-]{3,64}$'),
    name          TEXT    NOT NULL,
    -- SHA-256 of the secret (generated secrets carry 256 bits of entropy);
    -- NULL for public clients.
    secret_hash   TEXT,
    is_public     BOOLEAN NOT NULL,
    first_party   BOOLEAN NOT NULL DEFAULT FALSE,
    redirect_uris TEXT[]  NOT NULL DEFAULT '{}',
    grant_types   TEXT[]  NOT NULL DEFAULT '{}',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (is_public = (secret_hash IS NULL))
);

-- Scopes a client may obtain (for a user, or for itself by client credentials).
CREATE TABLE client_scope (
    client_id TEXT NOT NULL REFERENCES client (id) ON DELETE CASCADE,
    scope_id  INT  NOT NULL REFERENCES scope (id) ON DELETE CASCADE,
    PRIMARY KEY (client_id, scope_id)
);

-- A grant family: one authorization (code) and every token that came of it.
CREATE TABLE grant_family (
    id         UUID PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES client (id) ON DELETE CASCADE,
    user_id    UUID,
    revoked_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX grant_family_user_idx ON grant_family (user_id);

CREATE TABLE authorization_code (
    code_hash      TEXT PRIMARY KEY,
    family_id      UUID NOT NULL REFERENCES grant_family (id) ON DELETE CASCADE,
    client_id      TEXT NOT NULL,
    user_id        UUID NOT NULL,
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    code_challenge TEXT,
    expires_at     TIMESTAMPTZ NOT NULL,
    consumed_at    TIMESTAMPTZ
);

CREATE TABLE refresh_token (
    token_hash TEXT PRIMARY KEY,
    family_id  UUID NOT NULL REFERENCES grant_family (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX refresh_token_family_idx ON refresh_token (family_id);

-- Access tokens issued, so that revocation and introspection see them.
CREATE TABLE access_token (
    jti        UUID PRIMARY KEY,
    family_id  UUID REFERENCES grant_family (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    user_id    UUID,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX access_token_family_idx ON access_token (family_id);
CREATE INDEX access_token_user_idx ON access_token (user_id);

-- The seeded catalogue.
INSERT INTO permission_object (name) VALUES ('task'), ('rbac'), ('client'), ('user');
INSERT INTO permission_action (name) VALUES
    ('read'), ('edit'), ('create'), ('delete'), ('su_read'), ('su_edit'), ('admin');
INSERT INTO scope (name, description) VALUES
    ('read:task', 'Read your own tasks'),
    ('edit:task', 'Move your own tasks along their workflow'),
    ('create:task', 'Create tasks'),
    ('delete:task', 'Delete tasks'),
    ('su_read:task', 'Read every task and the reports'),
    ('su_edit:task', 'Assign any task'),
    ('admin:rbac', 'Administer roles, permissions and scopes'),
    ('admin:client', 'Administer OAuth2 clients'),
    ('admin:user', 'Administer users and their roles');
INSERT INTO permission (name, object_id, action_id)
SELECT o.name || '.' || a.name, o.id, a.id
FROM permission_object o
JOIN permission_action a ON
    (o.name = 'task' AND a.name IN ('read', 'edit', 'create', 'delete', 'su_read', 'su_edit'))
    OR (o.name IN ('rbac', 'client', 'user') AND a.name = 'admin');
INSERT INTO permission_scope (permission_id, scope_id)
SELECT p.id, s.id
FROM permission p
JOIN permission_object o ON o.id = p.object_id
JOIN permission_action a ON a.id = p.action_id
JOIN scope s ON s.name = a.name || ':' || o.name
    OR (a.name = 'admin' AND s.name = 'admin:' || o.name);
INSERT INTO role (name, description) VALUES
    ('Employee', 'Works on their own tasks'),
    ('Employer', 'Creates, assigns and oversees tasks'),
    ('admin', 'Administers the platform');
INSERT INTO role_permission (role_id, permission_id)
SELECT r.id, p.id FROM role r, permission p
WHERE (r.name = 'Employee' AND p.name IN ('task.read', 'task.edit'))
   OR (r.name = 'Employer' AND p.name LIKE 'task.%')
   OR (r.name = 'admin' AND p.name IN ('rbac.admin', 'client.admin', 'user.admin'));
