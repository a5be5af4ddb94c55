-- Run once by the postgres image on an empty data directory
-- (/docker-entrypoint-initdb.d). One database per service; each service
-- migrates its own database at start.
CREATE DATABASE authenticator;
CREATE DATABASE safekeeper;
CREATE DATABASE task;
CREATE DATABASE user_directory;
CREATE DATABASE access_rule;
CREATE DATABASE accounting;
CREATE DATABASE analytics;
CREATE DATABASE notifier;
