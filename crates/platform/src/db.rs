//! PostgreSQL through diesel and r2d2, and the one way to reach it from
//! async code: [`with_conn`], which checks a connection out and runs the
//! work on tokio's blocking pool with the caller's span.

use std::time::{Duration, Instant};

use anyhow::Context;
use diesel::{
    connection::{Instrumentation, InstrumentationEvent},
    expression::expression_types::Untyped,
    pg::{Pg, PgConnection},
    query_builder::{AstPass, Query, QueryFragment, QueryId},
    r2d2::{ConnectionManager, ManageConnection, Pool, PoolError, R2D2Connection},
    result::{DatabaseErrorKind, Error as DieselError},
    serialize::ToSql,
    sql_query,
    sql_types::HasSqlType,
    Connection, RunQueryDsl,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use tokio::task::JoinError;

use crate::problem::Problem;

pub type PgPool = Pool<PgManager>;

/// A connection idle longer than this is pinged (`SELECT 1`) before it is
/// handed out; one used more recently is handed out as it is. A database
/// restart kills every pooled connection without a word to the pool: the
/// ping finds those that sat idle, and [`Health`] those a request found
/// dead, so that no request gets a connection known to be dead. Busy
/// connections are not pinged: a round trip per request would cost a
/// tenth of the throughput of the fastest routes.
const PING_WHEN_IDLE: Duration = Duration::from_millis(500);

/// How a pooled connection has fared, kept in the connection's diesel
/// instrumentation slot (which sees every statement's outcome) so the
/// pool can read it back when the connection is checked out or returned.
struct Health {
    /// A statement failed because the connection is gone.
    lost: bool,
    /// When the connection was last given back to the pool.
    returned: Instant,
}

impl Instrumentation for Health {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::FinishQuery { error: Some(e), .. } = event {
            if is_connection_lost(e) {
                self.lost = true;
            }
        }
    }
}

fn health(conn: &mut PgConnection) -> Option<&mut Health> {
    conn.instrumentation().downcast_mut::<Health>()
}

/// True when `e` says the connection to PostgreSQL is gone (the server
/// restarted or went away), as opposed to a fault of the statement.
pub fn is_connection_lost(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _
        ) | DieselError::BrokenTransactionManager
    )
}

/// A database error as a client sees it: 503 with `Retry-After` when the
/// connection was lost (the database restarts; the request may be sent
/// again), 404 for a row that is not there (a `.first()` or `.get_result()`
/// that found nothing), else an opaque 500. The cause goes with the problem
/// to the log.
pub fn database_problem(e: &DieselError) -> Problem {
    match e {
        DieselError::NotFound => Problem::not_found("no such resource"),
        e if is_connection_lost(e) => {
            Problem::unavailable("the database is restarting or unreachable; try again shortly")
                .caused_by(e)
        }
        e => Problem::internal(e),
    }
}

/// diesel's r2d2 manager, with dead connections told from live ones (see
/// [`PING_WHEN_IDLE`] and [`Health`]).
#[derive(Debug)]
pub struct PgManager(ConnectionManager<PgConnection>);

impl ManageConnection for PgManager {
    type Connection = PgConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<PgConnection, Self::Error> {
        let mut conn = self.0.connect()?;
        conn.set_instrumentation(Health {
            lost: false,
            returned: Instant::now(),
        });
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut PgConnection) -> Result<(), Self::Error> {
        match health(conn) {
            Some(h) if h.lost => Err(diesel::r2d2::Error::QueryError(
                DieselError::BrokenTransactionManager,
            )),
            Some(h) if h.returned.elapsed() < PING_WHEN_IDLE => Ok(()),
            _ => conn.ping().map_err(diesel::r2d2::Error::QueryError),
        }
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        if std::thread::panicking() || conn.is_broken() {
            return true;
        }
        match health(conn) {
            Some(h) => {
                h.returned = Instant::now();
                h.lost
            }
            None => false,
        }
    }
}

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
                Problem::unavailable("the database is busy or unreachable; try again shortly")
                    .caused_by(e)
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

/// A pool of at most `max_size` connections. A request waits at most
/// `checkout_wait` for one, then is answered 503 with `Retry-After`
/// ([`StoreError::Pool`]) rather than queueing without bound.
pub fn build_pool(
    database_url: &str,
    max_size: u32,
    checkout_wait: Duration,
) -> anyhow::Result<PgPool> {
    let manager = PgManager(ConnectionManager::<PgConnection>::new(database_url));
    Pool::builder()
        .max_size(max_size)
        .min_idle(Some(1))
        .connection_timeout(checkout_wait)
        // `PgManager::is_valid` pings only connections idle for a while.
        .test_on_check_out(true)
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

/// A service's database at start-up: migrated ([`migrate`], on the
/// blocking pool), then its connection pool.
pub async fn migrated_pool(
    common: &crate::config::CommonConfig,
    service: EmbeddedMigrations,
) -> anyhow::Result<PgPool> {
    let url = common.database_url.clone();
    blocking(move || migrate(&url, service)).await??;
    build_pool(
        &common.database_url,
        common.database_pool_size,
        common.database_checkout_wait,
    )
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
    let cx = crate::telemetry::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        crate::telemetry::on_blocking_thread(cx, || {
            let mut conn = pool.get().map_err(StoreError::Pool)?;
            work(&mut conn)
        })
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
    let cx = crate::telemetry::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        crate::telemetry::on_blocking_thread(cx, work)
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

/// A fixed SQL statement that diesel keeps prepared on its connection
/// (cached by its text), unlike [`diesel::sql_query`], which PostgreSQL
/// parses and plans at every execution. Bind its parameters in order, as
/// with `sql_query`: `prepared("UPDATE t SET n = $1 WHERE id = $2")
/// .bind::<BigInt, _>(n).bind::<Text, _>(id)`. The placeholders must read
/// `$1`, `$2`, … in that order, each once (diesel numbers them as it binds;
/// others panic here), and each must be bound: the text sent stops before
/// the first unbound one, which PostgreSQL refuses as a syntax error. For
/// statements run often with the same shape (a batch's `unnest` arrays,
/// say); results load by name (`QueryableByName`), as `sql_query`'s do.
pub fn prepared(sql: &'static str) -> Prepared {
    let (head, rest) = split_placeholder(sql, 1);
    Prepared { head, rest }
}

/// `sql` up to its placeholder `$number` and what follows that placeholder
/// (`""` when it has none).
fn split_placeholder(sql: &'static str, number: usize) -> (&'static str, &'static str) {
    let bytes = sql.as_bytes();
    let mut i = 0;
    while let Some(at) = sql[i..].find('$').map(|p| p + i) {
        let digits = bytes[at + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 {
            let n: usize = sql[at + 1..at + 1 + digits].parse().unwrap_or(0);
            assert_eq!(
                n, number,
                "a prepared statement's placeholders go $1, $2, … in order: {sql}"
            );
            return (&sql[..at], &sql[at + 1 + digits..]);
        }
        i = at + 1;
    }
    (sql, "")
}

/// See [`prepared`].
#[derive(Debug, Clone, Copy)]
pub struct Prepared {
    /// The text before the first placeholder.
    head: &'static str,
    /// The text after it.
    rest: &'static str,
}

/// A [`Prepared`] statement with its parameters bound so far.
#[must_use = "a statement runs only when executed or loaded"]
pub struct Bound<Q, V, ST> {
    query: Q,
    value: V,
    /// The text between this parameter and the next.
    tail: &'static str,
    /// The text after the next parameter.
    rest: &'static str,
    number: usize,
    sql_type: std::marker::PhantomData<ST>,
}

fn bound<Q, V, ST>(query: Q, value: V, rest: &'static str, number: usize) -> Bound<Q, V, ST> {
    let (tail, rest) = split_placeholder(rest, number + 1);
    Bound {
        query,
        value,
        tail,
        rest,
        number,
        sql_type: std::marker::PhantomData,
    }
}

impl Prepared {
    /// Binds `$1` as `ST`.
    pub fn bind<ST, V>(self, value: V) -> Bound<Self, V, ST> {
        let rest = self.rest;
        bound(self, value, rest, 1)
    }
}

impl<Q, V, ST> Bound<Q, V, ST> {
    /// Binds the next parameter as `ST2`.
    pub fn bind<ST2, V2>(self, value: V2) -> Bound<Self, V2, ST2> {
        let (rest, number) = (self.rest, self.number + 1);
        bound(self, value, rest, number)
    }
}

impl QueryFragment<Pg> for Prepared {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        // Not marked unsafe to cache: the text identifies the statement.
        out.push_sql(self.head);
        Ok(())
    }
}

impl<Q, V, ST> QueryFragment<Pg> for Bound<Q, V, ST>
where
    Q: QueryFragment<Pg>,
    Pg: HasSqlType<ST>,
    V: ToSql<ST, Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        self.query.walk_ast(out.reborrow())?;
        // Writes `$n`, n counting the parameters pushed so far.
        out.push_bind_param::<ST, V>(&self.value)?;
        out.push_sql(self.tail);
        Ok(())
    }
}

// Every statement shares these types: diesel caches them by their text.
impl QueryId for Prepared {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q, V, ST> QueryId for Bound<Q, V, ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Prepared {
    type SqlType = Untyped;
}

impl<Q, V, ST> Query for Bound<Q, V, ST> {
    type SqlType = Untyped;
}

impl<C> RunQueryDsl<C> for Prepared {}
impl<C, Q, V, ST> RunQueryDsl<C> for Bound<Q, V, ST> {}

#[cfg(test)]
mod tests {
    use diesel::{
        debug_query,
        pg::Pg,
        sql_types::{Array, BigInt, Text},
    };

    use super::prepared;

    #[test]
    fn a_prepared_statement_keeps_its_text_and_binds_in_order() {
        let sql = "UPDATE t SET n = n + x.n FROM unnest($1::text[], $2::int8[]) AS x(id, n) \
                   WHERE t.id = x.id AND t.owner = $3";
        let q = prepared(sql)
            .bind::<Array<Text>, _>(vec!["a", "b"])
            .bind::<Array<BigInt>, _>(vec![1_i64, 2])
            .bind::<Text, _>("me");
        let shown = debug_query::<Pg, _>(&q).to_string();
        assert_eq!(
            shown,
            format!("{sql} -- binds: [[\"a\", \"b\"], [1, 2], \"me\"]")
        );
        let none = prepared("SELECT 1");
        assert_eq!(
            debug_query::<Pg, _>(&none).to_string(),
            "SELECT 1 -- binds: []"
        );
    }

    #[test]
    #[should_panic(expected = "in order")]
    fn placeholders_out_of_order_are_refused() {
        let _ = prepared("SELECT $2, $1");
    }
}
