-- How many registration notices (notification.v1, kind registration) each
-- hour has asked for: they are capped per hour
-- (REGISTRATION_NOTICES_PER_HOUR), so a flood of sign-ups from many
-- addresses cannot flood the superusers' mailboxes. `unmailed` counts the
-- accounts created past the cap, which the next hour's first notice
-- reports (and sets back to 0). Rows older than a day with nothing left to
-- report are deleted as new hours begin.
CREATE TABLE registration_notice_hours (
    hour timestamptz PRIMARY KEY,
    notices integer NOT NULL,
    unmailed integer NOT NULL DEFAULT 0
);
