DROP INDEX organizations_admin_reference;
ALTER TABLE organizations
    DROP COLUMN admin_provider_version,
    DROP COLUMN admin_is_active,
    DROP COLUMN admin_session_epoch;
