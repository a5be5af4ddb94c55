-- Applied provider events and finished creations past their windows are
-- deleted in small batches, oldest first (platform::retention): these
-- indexes find them without a scan of the rows still kept. Applying an
-- event or finishing a creation already writes a new row version into
-- every index (partial indexes on those columns exist), so each adds one
-- entry. Import jobs and provider tasks are few and need none.
CREATE INDEX provider_events_applied ON provider_events (received_at) WHERE applied_at IS NOT NULL;
CREATE INDEX user_creations_finished ON user_creations (updated_at)
    WHERE state IN ('completed', 'failed');
