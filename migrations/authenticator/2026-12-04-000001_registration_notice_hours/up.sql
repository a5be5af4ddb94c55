-- How many registration notices (notification.v1, kind registration) each
-- hour has asked for: they are capped per hour
-- (REGISTRATION_NOTICES_PER_HOUR), so a flood of sign-ups from many
-- addresses cannot flood the superusers' mailboxes. Rows older than a day
-- are deleted as new hours begin.
CREATE TABLE registration_notice_hours (
    hour timestamptz PRIMARY KEY,
    notices integer NOT NULL
);
