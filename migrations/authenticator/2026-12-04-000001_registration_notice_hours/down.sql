DROP TABLE registration_notice_hours;
