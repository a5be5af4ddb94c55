//! `/own`'s page: one assignee's tasks by creation time, from fixed SQL text
//! with bound values on `task` alone, the catalogue's names from memory.

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*};
use uuid::Uuid;

use super::{schema::task, tasks::TaskView, users::User};
use crate::{
    catalogue::Catalogue,
    domain::{DateRange, Direction, Page, TaskSortField},
};

/// A row of `task` as stored.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = task)]
pub struct TaskRow {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub creator: Uuid,
    pub assignee: Option<Uuid>,
    pub type_id: i32,
    pub severity_id: Option<i32>,
    pub status_id: i32,
    pub parent: Option<Uuid>,
    pub due_date: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<Uuid>,
    pub price_cents: i64,
    pub assignment_fee_cents: i64,
    pub completion_reward_cents: i64,
    pub version: i64,
}

impl TaskRow {
    /// The task as answers show it, the names of type, severity and status
    /// taken from the catalogue.
    fn into_view(
        self,
        cat: &Catalogue,
        creator: Option<String>,
        assignee: Option<String>,
        updated_by: Option<String>,
    ) -> TaskView {
        TaskView {
            id: self.id,
            title: self.title,
            description: self.description,
            creator_id: self.creator,
            creator,
            assignee_id: self.assignee,
            assignee,
            type_id: self.type_id,
            type_name: cat.types.get(&self.type_id).map(|t| t.name.clone()),
            severity_id: self.severity_id,
            severity_name: self
                .severity_id
                .and_then(|s| cat.severities.get(&s).cloned()),
            status_id: self.status_id,
            status_name: cat.statuses.get(&self.status_id).cloned(),
            parent: self.parent,
            due_date: self.due_date,
            created_at: self.created_at,
            updated_at: self.updated_at,
            updated_by_id: self.updated_by,
            updated_by,
            price_cents: self.price_cents,
            assignment_fee_cents: self.assignment_fee_cents,
            completion_reward_cents: self.completion_reward_cents,
            version: self.version,
        }
    }
}

/// Whether [`own_tasks`] serves `sort`: by creation time (either way),
/// ties broken by id the same way, as [`list_tasks`](super::list_tasks)
/// would order it.
pub fn own_fast_sort(sort: &[(TaskSortField, Direction)]) -> Option<Direction> {
    match sort {
        [(TaskSortField::CreatedAt, d)] => Some(*d),
        [(TaskSortField::CreatedAt, d), (TaskSortField::Id, e)] if d == e => Some(*d),
        _ => None,
    }
}

/// The page of one assignee's tasks, by creation time, with the names of
/// their creators and last updaters. PostgreSQL plans a prepared statement
/// generically after a few runs, blind to how many tasks the assignee has;
/// with the names joined in, that plan read, joined and sorted all of the
/// assignee's tasks for every page (1.7 ms at 1,000 tasks). With the names
/// as per-row lookups, `task` is the only relation, and every plan is a
/// walk of `task_assignee_created_idx` that stops after the page (0.1 ms).
struct OwnPage {
    dir: Direction,
    assignee: Uuid,
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
    page: Page,
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for OwnPage {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Timestamptz, Uuid as SqlUuid};
        let dir = match self.dir {
            Direction::Desc => "DESC",
            Direction::Asc => "ASC",
        };
        out.push_sql(
            "SELECT t.*, \
               (SELECT username FROM users WHERE id = t.creator) AS creator_name, \
               (SELECT username FROM users WHERE id = t.updated_by) AS updater_name \
             FROM task t WHERE t.assignee = ",
        );
        out.push_bind_param::<SqlUuid, _>(&self.assignee)?;
        out.push_sql(" AND t.created_at BETWEEN ");
        out.push_bind_param::<Timestamptz, _>(&self.lo)?;
        out.push_sql(" AND ");
        out.push_bind_param::<Timestamptz, _>(&self.hi)?;
        out.push_sql(" ORDER BY t.created_at ");
        out.push_sql(dir);
        out.push_sql(", t.id ");
        out.push_sql(dir);
        out.push_sql(" LIMIT ");
        out.push_bind_param::<BigInt, _>(&self.page.size)?;
        out.push_sql(" OFFSET ");
        out.push_bind_param::<BigInt, _>(&self.page.from)?;
        Ok(())
    }
}

impl diesel::query_builder::QueryId for OwnPage {
    type QueryId = ();
    // Not static: diesel then keys its statement cache by the SQL text
    // (one per direction) and prepares each once per connection; its
    // `sql_query` is never prepared.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl diesel::query_builder::Query for OwnPage {
    type SqlType = diesel::sql_types::Untyped;
}

impl RunQueryDsl<PgConnection> for OwnPage {}

#[derive(QueryableByName)]
struct OwnRow {
    #[diesel(embed)]
    task: TaskRow,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    creator_name: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    updater_name: Option<String>,
}

/// `me`'s tasks created in `range`, by creation time: the same answer as
/// [`list_tasks`](super::list_tasks) filtered on the assignee, from
/// queries of one fixed shape (prepared once per connection and planned
/// once by PostgreSQL) on `task` alone, through
/// `task_assignee_created_idx`, with the catalogue's names from memory.
pub fn own_tasks(
    conn: &mut PgConnection,
    me: &User,
    cat: &Catalogue,
    range: DateRange,
    page: Page,
    dir: Direction,
    counting: bool,
) -> QueryResult<(Vec<TaskView>, Option<i64>)> {
    let (lo, hi) = range.bounds();
    let rows: Vec<OwnRow> = OwnPage {
        dir,
        assignee: me.id,
        lo,
        hi,
        page,
    }
    .load(conn)?;
    let tasks = rows
        .into_iter()
        .map(|r| {
            r.task
                .into_view(cat, r.creator_name, me.username.clone(), r.updater_name)
        })
        .collect();
    let count = if counting {
        Some(
            task::table
                .filter(task::assignee.eq(me.id))
                .filter(task::created_at.between(lo, hi))
                .count()
                .get_result(conn)?,
        )
    } else {
        None
    };
    Ok((tasks, count))
}
