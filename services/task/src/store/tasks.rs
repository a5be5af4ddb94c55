//! One task: the task as answers show it, its creation, its changes
//! (status, assignee, price, fields, type) under a row lock, its deletion,
//! and its status history. Each change writes its `task.v1` event
//! ([`super::events`]) in the same transaction.

use chrono::{DateTime, Utc};
use contracts::topics::task::Change;
use diesel::{pg::PgConnection, prelude::*};
use serde::Serialize;
use uuid::Uuid;

use super::{
    events::{event_state, record, record_current},
    schema::{task, task_status_history, task_view},
};
use crate::{catalogue::Catalogue, domain::Amounts};

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
    pub price_cents: i64,
    pub assignment_fee_cents: i64,
    pub completion_reward_cents: i64,
    /// How many changes the task has had: the `version` of its latest
    /// `task.v1` event.
    pub version: i64,
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
    pub amounts: Amounts,
}

/// Inserts a task and the first line of its status history, with its
/// events: created (version 1) and, when it has an assignee, assigned
/// (version 2).
pub fn insert_task(conn: &mut PgConnection, new: NewTask) -> QueryResult<Uuid> {
    conn.transaction(|c| {
        let id = Uuid::now_v7();
        let now = Utc::now();
        let version = if new.assignee.is_some() { 2 } else { 1 };
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
                task::price_cents.eq(new.amounts.price_cents),
                task::assignment_fee_cents.eq(new.amounts.assignment_fee_cents),
                task::completion_reward_cents.eq(new.amounts.completion_reward_cents),
                task::version.eq(version),
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
        let v = task_view(c, id)?.ok_or(diesel::result::Error::NotFound)?;
        let by = new.creator;
        let created = event_state(&v);
        record(
            c,
            contracts::topics::task::Task {
                assignee_id: None,
                ..created.clone()
            },
            1,
            Change::Created { by },
        )?;
        if let Some(to) = new.assignee {
            let assigned = Change::Assigned {
                from: None,
                to: Some(to),
                by,
            };
            record(c, created, 2, assigned)?;
        }
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

/// Moves a locked task to `to`, records who did it in the history and
/// writes its event.
pub fn set_status(
    conn: &mut PgConnection,
    t: &Lockable,
    to: i32,
    by: Uuid,
    cat: &Catalogue,
) -> QueryResult<()> {
    let now = Utc::now();
    diesel::update(task::table.find(t.id))
        .set((
            task::status_id.eq(to),
            task::updated_at.eq(now),
            task::updated_by.eq(Some(by)),
            task::version.eq(task::version + 1),
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
    let change = Change::StatusChanged {
        from: cat.status_name(t.status_id).to_owned(),
        to: cat.status_name(to).to_owned(),
        by,
    };
    record_current(conn, t.id, change)?;
    Ok(())
}

/// Sets the assignee of task `id` and nothing else, and writes the
/// event (each assignment is one, the same assignee again too: each
/// charges the fee). `None` when there is no such task, else who was
/// assigned before.
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
                task::version.eq(task::version + 1),
            ))
            .execute(c)?;
        let change = Change::Assigned {
            from: t.assignee,
            to: Some(assignee),
            by,
        };
        record_current(c, id, change)?;
        Ok(Some(t.assignee))
    })
}

/// What a change of a task's fields sets; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskEdit {
    pub title: Option<String>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    /// `Some(None)` clears it.
    pub due_date: Option<Option<DateTime<Utc>>>,
    pub type_id: Option<i32>,
    /// A new price, with the fee and reward it gives.
    pub amounts: Option<Amounts>,
}

/// What [`edit_task`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edited {
    NoSuchTask,
    /// Changed (or already so); the task's assignee, whose pages change.
    Done {
        assignee: Option<Uuid>,
    },
}

/// The fields a change may touch, read under a row lock.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = task)]
struct EditableRow {
    title: String,
    description: Option<String>,
    assignee: Option<Uuid>,
    type_id: i32,
    status_id: i32,
    due_date: Option<DateTime<Utc>>,
    price_cents: i64,
}

/// Applies `edit` to task `id` as `by`. Only what differs from the task
/// changes, each kind with its event in this order: the fields (`edited`,
/// naming them), then the status when a new type's workflow moves it
/// ([`Catalogue::status_for_type`]; recorded in the history like any
/// move), then the price. A change that changes nothing writes nothing.
pub fn edit_task(
    conn: &mut PgConnection,
    id: Uuid,
    edit: &TaskEdit,
    by: Uuid,
    cat: &Catalogue,
) -> QueryResult<Edited> {
    conn.transaction(|c| {
        let Some(t) = task::table
            .find(id)
            .for_update()
            .select(EditableRow::as_select())
            .first(c)
            .optional()?
        else {
            return Ok(Edited::NoSuchTask);
        };
        let now = Utc::now();
        let title = edit.title.as_ref().filter(|v| **v != t.title);
        let description = edit.description.as_ref().filter(|v| **v != t.description);
        let due_date = edit.due_date.as_ref().filter(|v| **v != t.due_date);
        let type_id = edit.type_id.filter(|v| *v != t.type_id);
        let fields: Vec<String> = [
            ("title", title.is_some()),
            ("description", description.is_some()),
            ("due_date", due_date.is_some()),
            ("type_id", type_id.is_some()),
        ]
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(name, _)| name.to_owned())
        .collect();
        if !fields.is_empty() {
            diesel::update(task::table.find(id))
                .set((
                    task::title.eq(title.unwrap_or(&t.title)),
                    task::description.eq(description.unwrap_or(&t.description)),
                    task::due_date.eq(due_date.unwrap_or(&t.due_date)),
                    task::type_id.eq(type_id.unwrap_or(t.type_id)),
                    task::updated_at.eq(now),
                    task::updated_by.eq(Some(by)),
                    task::version.eq(task::version + 1),
                ))
                .execute(c)?;
            record_current(c, id, Change::Edited { fields, by })?;
        }
        if let Some(new_type) = type_id {
            let to = cat.status_for_type(new_type, t.status_id);
            if to != t.status_id {
                let locked = Lockable {
                    id,
                    assignee: t.assignee,
                    type_id: new_type,
                    status_id: t.status_id,
                };
                set_status(c, &locked, to, by, cat)?;
            }
        }
        if let Some(a) = edit.amounts.filter(|a| a.price_cents != t.price_cents) {
            diesel::update(task::table.find(id))
                .set((
                    task::price_cents.eq(a.price_cents),
                    task::assignment_fee_cents.eq(a.assignment_fee_cents),
                    task::completion_reward_cents.eq(a.completion_reward_cents),
                    task::updated_at.eq(now),
                    task::updated_by.eq(Some(by)),
                    task::version.eq(task::version + 1),
                ))
                .execute(c)?;
            let change = Change::PriceChanged {
                from_cents: t.price_cents,
                to_cents: a.price_cents,
                by,
            };
            record_current(c, id, change)?;
        }
        Ok(Edited::Done {
            assignee: t.assignee,
        })
    })
}

/// What [`delete_task`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    NoSuchTask,
    /// Other tasks name it as their parent: it stays.
    HasSubtasks,
    /// Gone, with its history; the assignee it had.
    Done {
        assignee: Option<Uuid>,
    },
}

/// Deletes task `id` and its status history, and writes its deletion
/// event (`op` `d`, the task as it was, the next version). A task that is
/// the parent of others is kept.
pub fn delete_task(conn: &mut PgConnection, id: Uuid, by: Uuid) -> QueryResult<Deleted> {
    conn.transaction(|c| {
        let Some(t) = lock_task(c, id)? else {
            return Ok(Deleted::NoSuchTask);
        };
        let children = task::table.filter(task::parent.eq(Some(id)));
        if diesel::select(diesel::dsl::exists(children)).get_result(c)? {
            return Ok(Deleted::HasSubtasks);
        }
        let v = task_view(c, id)?.ok_or(diesel::result::Error::NotFound)?;
        record(c, event_state(&v), v.version + 1, Change::Deleted { by })?;
        diesel::delete(task::table.find(id)).execute(c)?;
        Ok(Deleted::Done {
            assignee: t.assignee,
        })
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
