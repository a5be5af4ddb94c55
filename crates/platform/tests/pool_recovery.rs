//! Pooled connections that the database ended (a restart, a failover, an
//! administrator) are told from live ones: a request is not handed a
//! connection known to be dead, and the one that first meets a dead
//! connection is answered 503 (try again), not 500. The test ends its
//! pool's server processes with `pg_terminate_backend`, which is what a
//! restart does to each of them ("terminating connection due to
//! administrator command"), without restarting the server other tests use.

use std::time::Duration;

use diesel::{
    pg::PgConnection, sql_query, sql_types::Integer, Connection, QueryableByName, RunQueryDsl,
};
use platform::db::{self, PgPool};
use testkit::TestDatabase;

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

/// The server processes behind `n` connections checked out at once (so
/// that the pool holds `n` distinct ones afterwards).
fn backends(pool: &PgPool, n: usize) -> Vec<i32> {
    let held: Vec<_> = (0..n).map(|_| pool.get().expect("connection")).collect();
    held.into_iter()
        .map(|mut c| {
            sql_query("SELECT pg_backend_pid() AS pid")
                .get_result::<Pid>(&mut *c)
                .expect("pid")
                .pid
        })
        .collect()
}

fn terminate(url: &str, pids: &[i32]) {
    let mut admin = PgConnection::establish(url).expect("admin connection");
    for pid in pids {
        sql_query(format!("SELECT pg_terminate_backend({pid})"))
            .execute(&mut admin)
            .expect("terminate");
    }
    // The server ends them asynchronously; wait until they are gone.
    for _ in 0..100 {
        let left: i64 = sql_query(format!(
            "SELECT count(*)::int AS pid FROM pg_stat_activity WHERE pid IN ({})",
            pids.iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ))
        .get_result::<Pid>(&mut admin)
        .map(|p| p.pid as i64)
        .unwrap_or(0);
        if left == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the terminated backends did not go away");
}

#[derive(Debug)]
enum WithConnError {
    Db(diesel::result::Error),
    Store(db::StoreError),
}

impl From<db::StoreError> for WithConnError {
    fn from(e: db::StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<diesel::result::Error> for WithConnError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e)
    }
}

async fn run(pool: &PgPool) -> Result<(), WithConnError> {
    db::with_conn(pool, |c| -> Result<(), WithConnError> {
        sql_query("SELECT 1").execute(c)?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn connections_ended_while_idle_are_replaced_before_any_request_sees_them() {
    let database = TestDatabase::create("pool_idle");
    let pool = db::build_pool(&database.url, 4, Duration::from_secs(2)).expect("pool");
    let pids = backends(&pool, 4);
    terminate(&database.url, &pids);
    // Idle past the window in which a just-used connection is trusted.
    tokio::time::sleep(Duration::from_millis(800)).await;

    for i in 0..20 {
        if let Err(e) = run(&pool).await {
            panic!("request {i} after the backends ended failed: {e:?}");
        }
    }
    let now = backends(&pool, 4);
    assert!(
        now.iter().all(|p| !pids.contains(p)),
        "the pool still holds an ended connection: {pids:?} then {now:?}"
    );
}

#[tokio::test]
async fn a_connection_found_dead_is_a_503_once_and_never_handed_out_again() {
    let database = TestDatabase::create("pool_hot");
    let pool = db::build_pool(&database.url, 1, Duration::from_secs(2)).expect("pool");
    let pids = backends(&pool, 1);
    // Ended right after use: within the window the pool trusts it, so the
    // next request may meet it dead.
    terminate(&database.url, &pids);

    let mut lost = 0;
    for i in 0..10 {
        match run(&pool).await {
            Ok(()) => {}
            Err(WithConnError::Db(e)) => {
                assert!(
                    db::is_connection_lost(&e),
                    "request {i}: not a lost connection: {e}"
                );
                let problem = db::database_problem(&e);
                assert_eq!(problem.status, 503, "request {i}: {e}");
                assert!(problem.retry_after_seconds.is_some());
                lost += 1;
            }
            Err(WithConnError::Store(e)) => panic!("request {i}: no connection: {e}"),
        }
    }
    assert!(lost <= 1, "the dead connection was handed out {lost} times");
    assert!(run(&pool).await.is_ok());
}
