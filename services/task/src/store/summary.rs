//! The summary's counts per assignee, from the monthly rollup where it can
//! answer and from `task` elsewhere, and the users a summary shows.

use std::collections::HashMap;

use diesel::{
    dsl::{count, count_star, sum},
    pg::PgConnection,
    prelude::*,
};
use uuid::Uuid;

use super::{
    list::Filter,
    schema::{task, task_rollup, users},
    users::User,
};
use crate::domain::{DateRange, Months};

/// Whether the rollup can answer a summary under `filter`: it knows the
/// assignee, the month of creation and the status, nothing else.
pub fn rollup_answers(filter: &Filter) -> bool {
    filter.creator.is_none()
        && filter.type_id.is_none()
        && filter.severity_id.is_none()
        && !matches!(filter.assignee, Some(None))
}

/// Per assignee, from `task`: tasks matching the range and filters, and
/// how many of those are completed. One GROUP BY over `task_created_idx`.
pub fn task_counts(
    conn: &mut PgConnection,
    range: DateRange,
    filter: &Filter,
    completed: i32,
) -> QueryResult<Vec<(Option<Uuid>, i64, i64)>> {
    let mut b = task::table
        .group_by(task::assignee)
        .select((
            task::assignee,
            count_star(),
            count(task::id).aggregate_filter(task::status_id.eq(completed)),
        ))
        .into_boxed();
    b = b.filter(task::assignee.is_not_null());
    if let Some(s) = range.start {
        b = b.filter(task::created_at.ge(s));
    }
    if let Some(e) = range.end {
        b = b.filter(task::created_at.le(e));
    }
    if let Some(Some(id)) = filter.assignee {
        b = b.filter(task::assignee.eq(id));
    }
    if let Some(id) = filter.creator {
        b = b.filter(task::creator.eq(id));
    }
    if let Some(id) = filter.status_id {
        b = b.filter(task::status_id.eq(id));
    }
    if let Some(id) = filter.type_id {
        b = b.filter(task::type_id.eq(id));
    }
    match filter.severity_id {
        Some(Some(id)) => b = b.filter(task::severity_id.eq(id)),
        Some(None) => b = b.filter(task::severity_id.is_null()),
        None => {}
    }
    b.load(conn)
}

/// An assignee, their tasks and how many are completed (sums: `None`
/// for no rows).
type RollupSums = (Uuid, Option<i64>, Option<i64>);

/// Per assignee, from the rollup: tasks created in the whole months
/// `[from, until)` matching the filter, and how many are completed.
fn rollup_counts(
    conn: &mut PgConnection,
    (from, until): Months,
    filter: &Filter,
    completed: i32,
) -> QueryResult<Vec<RollupSums>> {
    let mut b = task_rollup::table
        .group_by(task_rollup::assignee)
        .select((
            task_rollup::assignee,
            sum(task_rollup::tasks),
            sum(task_rollup::tasks).aggregate_filter(task_rollup::status_id.eq(completed)),
        ))
        .into_boxed();
    if let Some(f) = from {
        b = b.filter(task_rollup::month.ge(f));
    }
    if let Some(u) = until {
        b = b.filter(task_rollup::month.lt(u));
    }
    if let Some(Some(id)) = filter.assignee {
        b = b.filter(task_rollup::assignee.eq(id));
    }
    if let Some(id) = filter.status_id {
        b = b.filter(task_rollup::status_id.eq(id));
    }
    b.load(conn)
}

/// Per assignee: tasks matching the range and filters, and how many of
/// those are completed; assignees with none are left out. When the
/// rollup knows every filtered field, whole months are summed there and
/// only the partial months at the range's edges are counted in `task`,
/// all in one snapshot; otherwise everything is counted in `task`.
pub fn summary_counts(
    conn: &mut PgConnection,
    range: DateRange,
    filter: &Filter,
    completed: i32,
) -> QueryResult<Vec<(Uuid, i64, i64)>> {
    if !rollup_answers(filter) {
        return Ok(task_counts(conn, range, filter, completed)?
            .into_iter()
            .filter_map(|(id, total, done)| Some((id?, total, done)))
            .collect());
    }
    let split = range.split_by_month();
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run(|c| {
            let mut sums: HashMap<Uuid, (i64, i64)> = HashMap::new();
            if let Some(months) = split.months {
                for (id, total, done) in rollup_counts(c, months, filter, completed)? {
                    let e = sums.entry(id).or_default();
                    e.0 += total.unwrap_or(0);
                    e.1 += done.unwrap_or(0);
                }
            }
            for edge in [split.head, split.tail].into_iter().flatten() {
                for (id, total, done) in task_counts(c, edge, filter, completed)? {
                    let Some(id) = id else { continue };
                    let e = sums.entry(id).or_default();
                    e.0 += total;
                    e.1 += done;
                }
            }
            Ok(sums
                .into_iter()
                .filter(|(_, (total, _))| *total > 0)
                .map(|(id, (total, done))| (id, total, done))
                .collect())
        })
}

/// The users a summary shows: those with counts, and the active holders
/// of `role` (with zero), or only `only` when the query names one.
pub fn summary_users(
    conn: &mut PgConnection,
    with_counts: Vec<Uuid>,
    role: &str,
    only: Option<Uuid>,
) -> QueryResult<Vec<User>> {
    match only {
        Some(id) => users::table.find(id).select(User::as_select()).load(conn),
        None => users::table
            .filter(
                users::id.eq_any(with_counts).or(users::is_active
                    .eq(true)
                    .and(users::user_version.gt(0))
                    .and(users::roles.contains(vec![role.to_owned()]))),
            )
            .select(User::as_select())
            .load(conn),
    }
}
