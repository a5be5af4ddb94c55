DROP TABLE user_changes;
ALTER TABLE users DROP COLUMN environment_role;
