DROP TABLE dashboard_sessions;
DROP TABLE dashboard_logins;
