DROP TABLE population;
DROP TABLE rules;
DROP TABLE restriction_log;
DROP TABLE events;
DROP TABLE cards;
DROP TABLE users;
