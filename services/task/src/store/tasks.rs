//! One task: the task as answers show it, its creation, its status and
//! assignee changes under a row lock, and its status history.

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*};
use serde::Serialize;
use uuid::Uuid;

use super::schema::{task, task_status_history, task_view};

/// A task as every answer shows it.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = task_view)]
pub struct TaskView {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub creator_id: Uuid,
    pub creator: Option<String>,
    pub assignee_id: Option<Uuid>,
    pub assignee: Option<String>,
    pub type_id: i32,
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    pub severity_id: Option<i32>,
    #[serde(rename = "severity")]
    pub severity_name: Option<String>,
    pub status_id: i32,
    #[serde(rename = "status")]
    pub status_name: Option<String>,
    pub parent: Option<Uuid>,
    pub due_date: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub updated_by_id: Option<Uuid>,
    pub updated_by: Option<String>,
}

pub fn task_view(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<TaskView>> {
    task_view::table
        .find(id)
        .select(TaskView::as_select())
        .first(conn)
        .optional()
}

pub fn task_exists(conn: &mut PgConnection, id: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(task::table.find(id))).get_result(conn)
}

pub struct NewTask {
    pub title: String,
    pub description: Option<String>,
    pub creator: Uuid,
    pub assignee: Option<Uuid>,
    pub type_id: i32,
    pub severity_id: Option<i32>,
    pub status_id: i32,
    pub parent: Option<Uuid>,
    pub due_date: Option<DateTime<Utc>>,
}

/// Inserts a task and the first line of its status history.
pub fn insert_task(conn: &mut PgConnection, new: NewTask) -> QueryResult<Uuid> {
    conn.transaction(|c| {
        let id = Uuid::now_v7();
        let now = Utc::now();
        diesel::insert_into(task::table)
            .values((
                task::id.eq(id),
                task::title.eq(&new.title),
                task::description.eq(&new.description),
                task::creator.eq(new.creator),
                task::assignee.eq(new.assignee),
                task::type_id.eq(new.type_id),
                task::severity_id.eq(new.severity_id),
                task::status_id.eq(new.status_id),
                task::parent.eq(new.parent),
                task::due_date.eq(new.due_date),
                task::created_at.eq(now),
                task::updated_at.eq(now),
            ))
            .execute(c)?;
        diesel::insert_into(task_status_history::table)
            .values((
                task_status_history::task_id.eq(id),
                task_status_history::from_status_id.eq(None::<i32>),
                task_status_history::to_status_id.eq(new.status_id),
                task_status_history::changed_by.eq(new.creator),
                task_status_history::changed_at.eq(now),
            ))
            .execute(c)?;
        Ok(id)
    })
}

/// What a status change needs to know of the task, read under a row lock.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = task)]
pub struct Lockable {
    pub id: Uuid,
    pub assignee: Option<Uuid>,
    pub type_id: i32,
    pub status_id: i32,
}

/// Reads a task `FOR UPDATE`; call inside a transaction.
pub fn lock_task(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<Lockable>> {
    task::table
        .find(id)
        .for_update()
        .select(Lockable::as_select())
        .first(conn)
        .optional()
}

/// Moves a locked task to `to` and records who did it.
pub fn set_status(conn: &mut PgConnection, t: &Lockable, to: i32, by: Uuid) -> QueryResult<()> {
    let now = Utc::now();
    diesel::update(task::table.find(t.id))
        .set((
            task::status_id.eq(to),
            task::updated_at.eq(now),
            task::updated_by.eq(Some(by)),
        ))
        .execute(conn)?;
    diesel::insert_into(task_status_history::table)
        .values((
            task_status_history::task_id.eq(t.id),
            task_status_history::from_status_id.eq(Some(t.status_id)),
            task_status_history::to_status_id.eq(to),
            task_status_history::changed_by.eq(by),
            task_status_history::changed_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Sets the assignee and nothing else. `false` when the task does not exist.
/// Sets the assignee of task `id`; `None` when there is no such task,
/// else who was assigned before.
pub fn assign(
    conn: &mut PgConnection,
    id: Uuid,
    assignee: Uuid,
    by: Uuid,
) -> QueryResult<Option<Option<Uuid>>> {
    conn.transaction(|c| {
        let Some(t) = lock_task(c, id)? else {
            return Ok(None);
        };
        diesel::update(task::table.find(id))
            .set((
                task::assignee.eq(Some(assignee)),
                task::updated_at.eq(Utc::now()),
                task::updated_by.eq(Some(by)),
            ))
            .execute(c)?;
        Ok(Some(t.assignee))
    })
}

/// One line of the status history.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = task_status_history)]
pub struct HistoryEntry {
    pub from_status_id: Option<i32>,
    pub to_status_id: i32,
    pub changed_by: Uuid,
    pub changed_at: DateTime<Utc>,
}

pub fn history(conn: &mut PgConnection, task_id: Uuid) -> QueryResult<Vec<HistoryEntry>> {
    task_status_history::table
        .filter(task_status_history::task_id.eq(task_id))
        .order((
            task_status_history::changed_at.asc(),
            task_status_history::id.asc(),
        ))
        .select(HistoryEntry::as_select())
        .load(conn)
}
