//! The task list: equality filters, a creation range, sorting and paging
//! over `task_view`, all built with diesel's DSL.

use diesel::{pg::PgConnection, prelude::*};
use uuid::Uuid;

use super::{schema::task_view, tasks::TaskView};
use crate::domain::{DateRange, Direction, Page, TaskSortField};

/// Equality filters with users resolved to account ids.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub assignee: Option<Option<Uuid>>,
    pub creator: Option<Uuid>,
    pub status_id: Option<i32>,
    pub type_id: Option<i32>,
    pub severity_id: Option<Option<i32>>,
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub range: DateRange,
    pub filter: Filter,
    pub page: Page,
    pub sort: Vec<(TaskSortField, Direction)>,
    pub counting: bool,
}

fn filtered(q: &ListQuery) -> task_view::BoxedQuery<'static, diesel::pg::Pg> {
    let mut b = task_view::table.into_boxed();
    if let Some(s) = q.range.start {
        b = b.filter(task_view::created_at.ge(s));
    }
    if let Some(e) = q.range.end {
        b = b.filter(task_view::created_at.le(e));
    }
    let f = &q.filter;
    match f.assignee {
        Some(Some(id)) => b = b.filter(task_view::assignee_id.eq(id)),
        Some(None) => b = b.filter(task_view::assignee_id.is_null()),
        None => {}
    }
    if let Some(id) = f.creator {
        b = b.filter(task_view::creator_id.eq(id));
    }
    if let Some(id) = f.status_id {
        b = b.filter(task_view::status_id.eq(id));
    }
    if let Some(id) = f.type_id {
        b = b.filter(task_view::type_id.eq(id));
    }
    match f.severity_id {
        Some(Some(id)) => b = b.filter(task_view::severity_id.eq(id)),
        Some(None) => b = b.filter(task_view::severity_id.is_null()),
        None => {}
    }
    b
}

macro_rules! order_by {
    ($b:expr, $col:expr, $dir:expr) => {
        match $dir {
            Direction::Asc => $b.then_order_by($col.asc()),
            Direction::Desc => $b.then_order_by($col.desc()),
        }
    };
}

/// A page of tasks and, when asked, how many match in all.
pub fn list_tasks(
    conn: &mut PgConnection,
    q: &ListQuery,
) -> QueryResult<(Vec<TaskView>, Option<i64>)> {
    let mut b = filtered(q);
    for (field, dir) in &q.sort {
        b = match field {
            TaskSortField::Id => order_by!(b, task_view::id, dir),
            TaskSortField::Title => order_by!(b, task_view::title, dir),
            TaskSortField::CreatedAt => order_by!(b, task_view::created_at, dir),
            TaskSortField::UpdatedAt => order_by!(b, task_view::updated_at, dir),
            TaskSortField::DueDate => order_by!(b, task_view::due_date, dir),
            TaskSortField::StatusId => order_by!(b, task_view::status_id, dir),
            TaskSortField::TypeId => order_by!(b, task_view::type_id, dir),
            TaskSortField::SeverityId => order_by!(b, task_view::severity_id, dir),
            TaskSortField::Assignee => order_by!(b, task_view::assignee, dir),
            TaskSortField::Creator => order_by!(b, task_view::creator, dir),
        };
    }
    // A unique last key makes paging stable.
    if !q.sort.iter().any(|(f, _)| *f == TaskSortField::Id) {
        let dir = q.sort.first().map(|(_, d)| *d).unwrap_or(Direction::Asc);
        b = order_by!(b, task_view::id, dir);
    }
    let tasks = b
        .offset(q.page.from)
        .limit(q.page.size)
        .select(TaskView::as_select())
        .load(conn)?;
    let count = if q.counting {
        Some(filtered(q).count().get_result(conn)?)
    } else {
        None
    };
    Ok((tasks, count))
}
