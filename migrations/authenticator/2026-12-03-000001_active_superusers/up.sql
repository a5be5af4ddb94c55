-- Each new account's notice goes to the active superusers
-- (notification.v1): found by this small index, not a scan of accounts.
CREATE INDEX accounts_active_superusers ON accounts (created_at)
    WHERE is_superuser AND is_active;
