//! The tasks read model: each task's title, as its latest event left it.

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*, upsert::excluded};
use uuid::Uuid;

use super::schema::task;

/// Applies a task's title unless a newer version was applied already.
/// Returns whether anything changed.
pub fn apply_task(
    conn: &mut PgConnection,
    id: Uuid,
    title: &str,
    version: i64,
    updated_at: DateTime<Utc>,
) -> QueryResult<bool> {
    // `filter` of ON CONFLICT DO UPDATE: the WHERE that skips old versions.
    use diesel::query_dsl::methods::FilterDsl;
    let n = diesel::insert_into(task::table)
        .values((
            task::id.eq(id),
            task::title.eq(title),
            task::version.eq(version),
            task::updated_at.eq(updated_at),
        ))
        .on_conflict(task::id)
        .do_update()
        .set((
            task::title.eq(excluded(task::title)),
            task::version.eq(excluded(task::version)),
            task::updated_at.eq(excluded(task::updated_at)),
        ))
        .filter(task::version.lt(excluded(task::version)))
        .execute(conn)?;
    Ok(n > 0)
}
