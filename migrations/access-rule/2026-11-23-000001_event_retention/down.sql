DROP INDEX events_received_at_brin;
