//! What the directory prunes of its finished work, past the retention
//! windows of its configuration.

use super::{admin_refresh, changes};

/// What the directory prunes besides the outbox ([`platform::retention`]):
/// finished work past its window. Open creations, compensated ones, tasks
/// still to run, provider events not applied yet and bootstrap token uses
/// (which keep a token from creating a second organization) are never
/// deleted.
pub fn retention_steps(
    windows: &crate::config::RetentionWindows,
) -> Vec<platform::retention::Step> {
    use platform::retention::Step;
    let mut steps = Vec::new();
    if let Some(w) = windows.provider_events {
        steps.push(Step::older_than(
            "provider_events",
            w,
            "DELETE FROM provider_events WHERE id = ANY(ARRAY(\
               SELECT id FROM provider_events WHERE applied_at IS NOT NULL AND received_at < $1 \
                ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
        ));
    }
    if let Some(w) = windows.import_jobs {
        steps.push(Step::older_than(
            "import_jobs",
            w,
            "DELETE FROM import_jobs WHERE id = ANY(ARRAY(\
               SELECT id FROM import_jobs WHERE status = 'finished' AND finished_at < $1 \
                LIMIT $2 FOR UPDATE SKIP LOCKED))",
        ));
    }
    if let Some(w) = windows.saga {
        steps.push(Step::older_than(
            "user_creations",
            w,
            "DELETE FROM user_creations WHERE id = ANY(ARRAY(\
               SELECT id FROM user_creations \
                WHERE state IN ('completed', 'failed') AND updated_at < $1 \
                ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
        ));
        steps.push(changes::retention_step(w));
        steps.push(Step::older_than(
            "provider_tasks",
            w,
            "DELETE FROM provider_tasks WHERE id = ANY(ARRAY(\
               SELECT id FROM provider_tasks WHERE done_at < $1 \
                LIMIT $2 FOR UPDATE SKIP LOCKED))",
        ));
    }
    steps.extend(admin_refresh::retention_steps());
    steps
}
