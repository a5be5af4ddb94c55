//! `task.v1`: every change of a task as an event in the outbox, written in
//! the transaction that makes the change (docs/events.md). Keyed by task
//! id; the envelope's `version` is the task's `version` column, which each
//! change raises by one.

use contracts::topics::task::{Change, Task, TaskEvent};
use diesel::{pg::PgConnection, QueryResult};
use platform::events::{enqueue, topics};
use uuid::Uuid;

use super::tasks::{task_view, TaskView};

/// The task as `task.v1` shows it.
pub fn event_state(v: &TaskView) -> Task {
    Task {
        id: v.id,
        title: v.title.clone(),
        price_cents: v.price_cents,
        assignment_fee_cents: v.assignment_fee_cents,
        completion_reward_cents: v.completion_reward_cents,
        assignee_id: v.assignee_id,
        status: v.status_name.clone().unwrap_or_default(),
        updated_at: v.updated_at,
    }
}

/// Writes the event of `change` to the outbox: `task` as the change left
/// it (for a deletion, as it was), at `version`.
pub fn record(
    conn: &mut PgConnection,
    task: Task,
    version: i64,
    change: Change,
) -> QueryResult<()> {
    let envelope = TaskEvent { task, change }
        .envelope(version)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    enqueue(conn, topics::TASK, &envelope)
}

/// Records `change` of task `id` with the state and version the task has
/// now, in this transaction (after the change was written).
pub fn record_current(conn: &mut PgConnection, id: Uuid, change: Change) -> QueryResult<TaskView> {
    let v = task_view(conn, id)?.ok_or(diesel::result::Error::NotFound)?;
    record(conn, event_state(&v), v.version, change)?;
    Ok(v)
}
