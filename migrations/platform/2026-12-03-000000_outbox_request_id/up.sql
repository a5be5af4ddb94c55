-- The X-Request-Id of the request that wrote the event (none for changes
-- made by background work): the relay sends it as the message's
-- `x-request-id` header, and consumers log it, so that one request can be
-- followed across the services its events reach. Nullable: no rewrite.
ALTER TABLE outbox ADD COLUMN request_id TEXT;
