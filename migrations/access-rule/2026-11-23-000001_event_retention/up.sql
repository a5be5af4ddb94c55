-- Stored events older than EVENT_RETENTION_DAYS are pruned (the record that
-- makes a resent event_id idempotent). Rows arrive in time order, so a
-- block-range index finds the old ones at almost no cost to inserts.
CREATE INDEX events_received_at_brin ON events USING brin (received_at);
