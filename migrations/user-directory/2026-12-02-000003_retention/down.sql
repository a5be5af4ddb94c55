DROP INDEX user_creations_finished;
DROP INDEX provider_events_applied;
