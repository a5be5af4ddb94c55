-- Which accounts are superusers, from iam.user.v1 (`is_superuser` of the
-- account): a superuser's session token may use the operator API. Kept
-- apart from `users`, which every event writes. Only true flags matter;
-- `version` is the account's event version, so a replay or an older event
-- changes nothing.
CREATE TABLE superusers (
    account_id TEXT PRIMARY KEY,
    is_superuser BOOLEAN NOT NULL,
    version BIGINT NOT NULL
);
