-- Published rows older than OUTBOX_RETENTION_HOURS are deleted in small
-- batches, oldest first (platform::retention). This index finds them
-- without a scan of the rows still kept; stamping a row published already
-- writes a new row version into every index (the partial index
-- outbox_unpublished depends on published_at), so it adds one entry there.
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
