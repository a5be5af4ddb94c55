//! The provider tasks queue: removals of provider accounts, queued in the
//! transaction that decided them and run (with back-off) afterwards.

use chrono::Utc;
use diesel::{pg::PgConnection, prelude::*};

use super::schema::provider_tasks;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = provider_tasks)]
pub struct ProviderTask {
    pub id: i64,
    pub kind: String,
    pub reference_id: String,
    pub attempts: i32,
}

pub fn queue_removal(conn: &mut PgConnection, reference: &str) -> QueryResult<()> {
    diesel::insert_into(provider_tasks::table)
        .values((
            provider_tasks::kind.eq("remove_user"),
            provider_tasks::reference_id.eq(reference),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn due_tasks(conn: &mut PgConnection, limit: i64) -> QueryResult<Vec<ProviderTask>> {
    provider_tasks::table
        .filter(provider_tasks::done_at.is_null())
        .filter(provider_tasks::next_attempt_at.le(Utc::now()))
        .order(provider_tasks::id.asc())
        .limit(limit)
        .select(ProviderTask::as_select())
        .load(conn)
}

pub fn task_done(conn: &mut PgConnection, id: i64) -> QueryResult<()> {
    diesel::update(provider_tasks::table.find(id))
        .set(provider_tasks::done_at.eq(Utc::now()))
        .execute(conn)
        .map(|_| ())
}

/// Retries later, backing off up to ten minutes.
pub fn task_failed(conn: &mut PgConnection, t: &ProviderTask, error: &str) -> QueryResult<()> {
    let secs = 2_i64
        .saturating_pow(t.attempts.clamp(0, 10) as u32)
        .min(600);
    diesel::update(provider_tasks::table.find(t.id))
        .set((
            provider_tasks::attempts.eq(t.attempts + 1),
            provider_tasks::last_error.eq(error),
            provider_tasks::next_attempt_at.eq(Utc::now() + chrono::Duration::seconds(secs)),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn pending_task_count(conn: &mut PgConnection) -> QueryResult<i64> {
    provider_tasks::table
        .filter(provider_tasks::done_at.is_null())
        .count()
        .get_result(conn)
}

pub fn cancel_removals(conn: &mut PgConnection, reference: &str) -> QueryResult<()> {
    diesel::update(
        provider_tasks::table
            .filter(provider_tasks::reference_id.eq(reference))
            .filter(provider_tasks::done_at.is_null()),
    )
    .set((
        provider_tasks::done_at.eq(Utc::now()),
        provider_tasks::last_error.eq("cancelled: the account was taken back"),
    ))
    .execute(conn)
    .map(|_| ())
}
