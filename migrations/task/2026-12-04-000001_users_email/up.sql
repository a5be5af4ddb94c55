-- The users read model's columns are those of every resource server's
-- (crates/resource-server: one code applies `iam.user.v1` everywhere).
-- The task service does not keep email addresses: the column stays NULL.
ALTER TABLE users ADD COLUMN email text;
