-- What the directory knows of each organization admin's account at the
-- authenticator (from iam.user.v1, by the account's event version): its
-- session epoch (an organization token whose `sep` is below it has ended:
-- a password change, a deactivation, a sign-out everywhere) and whether it
-- is active. Checked with the organization's row on every request, so no
-- join is needed. The admin keeps no row in `users` (that table holds the
-- organizations' members), hence columns here.
ALTER TABLE organizations
    ADD COLUMN admin_session_epoch    BIGINT  NOT NULL DEFAULT 0,
    ADD COLUMN admin_is_active        BOOLEAN NOT NULL DEFAULT TRUE,
    ADD COLUMN admin_provider_version BIGINT;

-- iam.user.v1 events find the organization of an admin account by it.
CREATE INDEX organizations_admin_reference ON organizations (admin_reference_id);
