//! Import jobs: a bulk import too large to answer at once (`crate::import`),
//! with its input until it finishes and its progress and rows' outcomes.

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::schema::import_jobs;

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = import_jobs)]
pub struct ImportJob {
    pub id: Uuid,
    #[serde(skip)]
    pub organization_id: Uuid,
    pub status: String,
    pub total: i32,
    pub processed: i32,
    pub created: i32,
    #[serde(rename = "exists")]
    pub existing: i32,
    pub failed: i32,
    #[serde(skip)]
    pub input: Option<Value>,
    #[serde(rename = "rows")]
    pub results: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub fn create_job(
    conn: &mut PgConnection,
    org: Uuid,
    total: i32,
    input: &Value,
) -> QueryResult<ImportJob> {
    diesel::insert_into(import_jobs::table)
        .values((
            import_jobs::id.eq(Uuid::now_v7()),
            import_jobs::organization_id.eq(org),
            import_jobs::status.eq("running"),
            import_jobs::total.eq(total),
            import_jobs::input.eq(input),
        ))
        .returning(ImportJob::as_returning())
        .get_result(conn)
}

pub struct Progress {
    pub processed: i32,
    pub created: i32,
    pub existing: i32,
    pub failed: i32,
    pub results: Value,
    pub finished: bool,
}

pub fn job_progress(conn: &mut PgConnection, id: Uuid, p: &Progress) -> QueryResult<()> {
    let now = Utc::now();
    diesel::update(import_jobs::table.find(id))
        .set((
            import_jobs::processed.eq(p.processed),
            import_jobs::created.eq(p.created),
            import_jobs::existing.eq(p.existing),
            import_jobs::failed.eq(p.failed),
            import_jobs::results.eq(&p.results),
            import_jobs::updated_at.eq(now),
        ))
        .execute(conn)?;
    if p.finished {
        diesel::update(import_jobs::table.find(id))
            .set((
                import_jobs::status.eq("finished"),
                import_jobs::input.eq(None::<Value>),
                import_jobs::finished_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn job(conn: &mut PgConnection, org: Uuid, id: Uuid) -> QueryResult<Option<ImportJob>> {
    import_jobs::table
        .find(id)
        .filter(import_jobs::organization_id.eq(org))
        .select(ImportJob::as_select())
        .first(conn)
        .optional()
}

pub fn running_jobs(conn: &mut PgConnection) -> QueryResult<Vec<ImportJob>> {
    import_jobs::table
        .filter(import_jobs::status.eq("running"))
        .select(ImportJob::as_select())
        .load(conn)
}
