DROP TABLE admin_refresh_tokens;
DROP TABLE admin_refresh_families;
