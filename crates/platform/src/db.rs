//! PostgreSQL through diesel and r2d2, and the one way to reach it from
//! async code: [`with_conn`], which checks a connection out and runs the
//! work on tokio's blocking pool with the caller's span.

use std::time::Duration;

use anyhow::Context;
use diesel::{
    pg::PgConnection,
    r2d2::{ConnectionManager, Pool, PoolError},
    sql_query, Connection, RunQueryDsl,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use tokio::task::JoinError;

use crate::problem::Problem;

pub type PgPool = Pool<ConnectionManager<PgConnection>>;

/// The platform's own tables (the outbox), run before a service's.
pub const PLATFORM_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/platform");

/// Why a unit of database work could not even start or finish.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no database connection became available")]
    Pool(#[source] PoolError),
    #[error("the blocking task panicked or was cancelled")]
    Join(#[source] JoinError),
}

impl From<&StoreError> for Problem {
    fn from(e: &StoreError) -> Self {
        match e {
            StoreError::Pool(_) => {
                tracing::warn!(error = %e, "database pool exhausted or unreachable");
                Problem::unavailable("the database is busy or unreachable; try again shortly")
            }
            StoreError::Join(_) => Problem::internal(e),
        }
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        Problem::from(&e)
    }
}

pub fn build_pool(database_url: &str, max_size: u32) -> anyhow::Result<PgPool> {
    let manager = ConnectionManager::<PgConnection>::new(database_url);
    Pool::builder()
        .max_size(max_size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(5))
        .test_on_check_out(false)
        .build(manager)
        .with_context(|| "connecting to PostgreSQL (DATABASE_URL)".to_string())
}

/// Runs the platform's migrations, then the service's, under an advisory
/// lock so that replicas starting together do not race.
pub fn migrate(database_url: &str, service: EmbeddedMigrations) -> anyhow::Result<()> {
    let mut conn = PgConnection::establish(database_url)
        .with_context(|| "connecting to PostgreSQL to migrate".to_string())?;
    sql_query("SELECT pg_advisory_lock(8120420001)").execute(&mut conn)?;
    let result = (|| -> anyhow::Result<()> {
        for set in [PLATFORM_MIGRATIONS, service] {
            conn.run_pending_migrations(set)
                .map_err(|e| anyhow::anyhow!("running migrations: {e}"))?;
        }
        Ok(())
    })();
    let _ = sql_query("SELECT pg_advisory_unlock(8120420001)").execute(&mut conn);
    result
}

/// Runs `work` with a pooled connection on the blocking pool. The caller's
/// span is carried over; pool exhaustion and panics map to [`StoreError`].
pub async fn with_conn<T, E, F>(pool: &PgPool, work: F) -> Result<T, E>
where
    F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    let pool = pool.clone();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let mut conn = pool.get().map_err(StoreError::Pool)?;
        work(&mut conn)
    })
    .await
    .map_err(StoreError::Join)?
}

/// Runs CPU-heavy work (bcrypt) on the blocking pool with the caller's span.
pub async fn blocking<T, F>(work: F) -> Result<T, StoreError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        work()
    })
    .await
    .map_err(StoreError::Join)
}

/// True when `e` is a unique-constraint violation on `constraint`.
pub fn is_unique_violation(e: &diesel::result::Error, constraint: &str) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            info
        ) if info.constraint_name() == Some(constraint)
    )
}
