-- The task tracker (seed model): statuses, severities, workflows with their
-- transitions, task types each bound to a workflow, tasks, and the history
-- of every status change. Plus the users read model fed by iam.user.v1 and
-- iam.user-role.v1.

CREATE TABLE task_status (
    id   INT  PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE task_severity (
    id   INT  PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE workflow (
    id                INT  PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    -- Where a new task of a type using this workflow starts.
    initial_status_id INT  NOT NULL REFERENCES task_status (id)
);

-- One allowed move of a workflow. `approver_role` names the role the
-- caller must hold (in the read model) for the move; NULL when anyone
-- allowed to edit the task may make it.
CREATE TABLE transition (
    id             SERIAL PRIMARY KEY,
    workflow_id    INT  NOT NULL REFERENCES workflow (id),
    from_status_id INT  NOT NULL REFERENCES task_status (id),
    to_status_id   INT  NOT NULL REFERENCES task_status (id),
    needs_approval BOOLEAN NOT NULL DEFAULT FALSE,
    approver_role  TEXT,
    UNIQUE (workflow_id, from_status_id, to_status_id),
    CHECK (from_status_id <> to_status_id),
    CHECK (needs_approval = (approver_role IS NOT NULL))
);

CREATE TABLE task_type (
    id          INT  PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    workflow_id INT  NOT NULL REFERENCES workflow (id)
);

-- Read model of the accounts (iam.user.v1: username, active) and of their
-- grants (iam.user-role.v1: roles, scopes). Each topic's version is kept
-- apart: an event is applied only when its version is above the stored one
-- for that topic, so replays and duplicates change nothing.
CREATE TABLE users (
    id           UUID PRIMARY KEY,
    -- NULL until the account's iam.user.v1 event has been applied.
    username     TEXT,
    is_active    BOOLEAN     NOT NULL DEFAULT FALSE,
    roles        TEXT[]      NOT NULL DEFAULT '{}',
    -- NULL until the first iam.user-role.v1 event: then the token's scopes
    -- are the only word on what the user holds.
    scopes       TEXT[],
    user_version BIGINT      NOT NULL DEFAULT 0,
    role_version BIGINT      NOT NULL DEFAULT 0,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX users_username_idx ON users (username);

CREATE TABLE task (
    id          UUID PRIMARY KEY,
    title       TEXT NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    description TEXT CHECK (char_length(description) <= 10000),
    -- Account ids (the read model's), not foreign keys: the read model may
    -- be truncated and rebuilt from the topics at any time.
    creator     UUID NOT NULL,
    assignee    UUID,
    type_id     INT  NOT NULL REFERENCES task_type (id),
    severity_id INT  REFERENCES task_severity (id),
    status_id   INT  NOT NULL REFERENCES task_status (id),
    parent      UUID REFERENCES task (id),
    due_date    TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by  UUID
);
-- /v1/task/own: one assignee's tasks in a date range, newest first.
CREATE INDEX task_assignee_created_idx ON task (assignee, created_at, id);
-- /v1/task/all and the summary: a date range over everyone; the summary's
-- GROUP BY reads assignee and status from the index alone.
CREATE INDEX task_created_idx ON task (created_at, id) INCLUDE (assignee, status_id);
CREATE INDEX task_parent_idx ON task (parent) WHERE parent IS NOT NULL;

-- Who moved which task from what to what, and when (from is NULL at creation).
CREATE TABLE task_status_history (
    id             BIGSERIAL PRIMARY KEY,
    task_id        UUID        NOT NULL REFERENCES task (id) ON DELETE CASCADE,
    from_status_id INT         REFERENCES task_status (id),
    to_status_id   INT         NOT NULL REFERENCES task_status (id),
    changed_by     UUID        NOT NULL,
    changed_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX task_status_history_task_idx ON task_status_history (task_id, changed_at);
CREATE INDEX task_status_history_changed_idx ON task_status_history (changed_at);

-- What every answer shows of a task: ids and names of type, severity and
-- status, usernames beside account ids. Left joins only, so that a count
-- over the view reads the task table alone (PostgreSQL removes them).
CREATE VIEW task_view AS
SELECT t.id,
       t.title,
       t.description,
       t.creator      AS creator_id,
       cu.username    AS creator,
       t.assignee     AS assignee_id,
       au.username    AS assignee,
       t.type_id,
       ty.name        AS type_name,
       t.severity_id,
       sv.name        AS severity_name,
       t.status_id,
       st.name        AS status_name,
       t.parent,
       t.due_date,
       t.created_at,
       t.updated_at,
       t.updated_by   AS updated_by_id,
       uu.username    AS updated_by
FROM task t
LEFT JOIN task_type ty     ON ty.id = t.type_id
LEFT JOIN task_severity sv ON sv.id = t.severity_id
LEFT JOIN task_status st   ON st.id = t.status_id
LEFT JOIN users cu         ON cu.id = t.creator
LEFT JOIN users au         ON au.id = t.assignee
LEFT JOIN users uu         ON uu.id = t.updated_by;

-- Seed data: the catalogue every deployment starts with.
INSERT INTO task_status (id, name) VALUES
    (1, 'To Do'), (2, 'In Progress'), (3, 'Pending'), (4, 'Completed');

INSERT INTO task_severity (id, name) VALUES
    (1, 'Low'), (2, 'Medium'), (3, 'Critical');

INSERT INTO workflow (id, name, initial_status_id) VALUES
    (1, 'Task workflow', 1),
    (2, 'Bug workflow', 1),
    (3, 'Feature workflow', 1);

-- Task: To Do -> In Progress -> Completed; In Progress <-> Pending with an
-- Employer's approval either way.
-- Bug: the same, and a Completed bug may be reopened (back to In Progress).
-- Feature: the same as Task, and a Pending feature may be shelved back to
-- To Do, again with an Employer's approval.
INSERT INTO transition (workflow_id, from_status_id, to_status_id, needs_approval, approver_role) VALUES
    (1, 1, 2, FALSE, NULL),
    (1, 2, 4, FALSE, NULL),
    (1, 2, 3, TRUE, 'Employer'),
    (1, 3, 2, TRUE, 'Employer'),
    (2, 1, 2, FALSE, NULL),
    (2, 2, 4, FALSE, NULL),
    (2, 2, 3, TRUE, 'Employer'),
    (2, 3, 2, TRUE, 'Employer'),
    (2, 4, 2, FALSE, NULL),
    (3, 1, 2, FALSE, NULL),
    (3, 2, 4, FALSE, NULL),
    (3, 2, 3, TRUE, 'Employer'),
    (3, 3, 2, TRUE, 'Employer'),
    (3, 3, 1, TRUE, 'Employer');

INSERT INTO task_type (id, name, workflow_id) VALUES
    (1, 'Task', 1), (2, 'Bug', 2), (3, 'Feature', 3);
