-- The W3C `traceparent` of the work that wrote the event (a request, or
-- the handling of an event that itself carried one): the relay sends it as
-- the message's `traceparent` header, and a consumer handles the message
-- inside that trace. Nullable: no rewrite.
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
