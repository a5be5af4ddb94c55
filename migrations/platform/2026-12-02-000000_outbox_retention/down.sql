DROP INDEX outbox_published;
