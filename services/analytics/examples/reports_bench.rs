//! Loads 1,000,000 ledger rows (and the aggregates they make) straight
//! into a database of its own, then measures the reports' queries, as the
//! routes run them, and the cost of applying a transaction.
//!
//! ```sh
//! cargo run -p analytics --example reports_bench
//! ```
//!
//! `BENCH_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/analytics_bench`) is dropped and
//! created anew, and dropped again at the end unless `BENCH_KEEP=1`;
//! `BENCH_ROWS` (default 1000000) and `BENCH_REQUESTS` (default 2000) size
//! the run.

use std::time::Instant;

use analytics::{
    domain::{DayRange, Period},
    startup::MIGRATIONS,
    store,
};
use chrono::{Days, NaiveDate, Utc};
use contracts::topics::accounting::{Kind, Transaction};
use diesel::{pg::PgConnection, prelude::*, sql_types::BigInt};
use diesel_migrations::MigrationHarness;
use hdrhistogram::Histogram;
use uuid::Uuid;

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The server's URL and the database's name.
fn split(url: &str) -> (&str, &str) {
    let (server, name) = url.rsplit_once('/').expect("a database URL");
    (server, name.split('?').next().unwrap_or(name))
}

fn recreate(url: &str) -> anyhow::Result<()> {
    let (server, name) = split(url);
    let mut admin = PgConnection::establish(&format!("{server}/postgres"))?;
    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)?;
    diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut admin)?;
    Ok(())
}

fn drop_database(url: &str) -> anyhow::Result<()> {
    let (server, name) = split(url);
    let mut admin = PgConnection::establish(&format!("{server}/postgres"))?;
    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)?;
    Ok(())
}

/// `rows` transactions over 730 days, 10,000 workers and 100,000 tasks,
/// and the aggregates the consumer would have kept from them.
fn load(c: &mut PgConnection, rows: i64) -> anyhow::Result<()> {
    diesel::sql_query(
        "INSERT INTO task (id, title, version, updated_at) \
         SELECT md5('t' || j)::uuid, 'task ' || j, 1, now() FROM generate_series(0, 99999) j",
    )
    .execute(c)?;
    diesel::sql_query(
        "INSERT INTO ledger_transaction (id, account_id, kind, amount_cents, \
             balance_after_cents, task_id, business_day, created_at, version) \
         SELECT gen_random_uuid(), md5('a' || (i % 10000))::uuid, \
             (ARRAY['fee', 'reward', 'payout'])[1 + i % 3], \
             CASE i % 3 WHEN 0 THEN -(100 + i % 900) WHEN 1 THEN 1000 + (i * 7919) % 9000 \
                  ELSE -(i % 500) END, \
             (i * 31) % 20000 - 5000, \
             CASE WHEN i % 3 = 2 THEN NULL ELSE md5('t' || (i % 100000))::uuid END, \
             date '2025-01-01' + (i % 730)::int, now(), i \
         FROM generate_series(1, $1) i",
    )
    .bind::<BigInt, _>(rows)
    .execute(c)?;
    diesel::sql_query(
        "INSERT INTO day_earnings (day, fees_cents, rewards_cents) \
         SELECT business_day, \
             coalesce(-sum(amount_cents) FILTER (WHERE kind = 'fee'), 0), \
             coalesce(sum(amount_cents) FILTER (WHERE kind = 'reward'), 0) \
         FROM ledger_transaction GROUP BY business_day",
    )
    .execute(c)?;
    diesel::sql_query(
        "INSERT INTO account_balance (account_id, balance_cents, version) \
         SELECT DISTINCT ON (account_id) account_id, balance_after_cents, version \
         FROM ledger_transaction ORDER BY account_id, version DESC",
    )
    .execute(c)?;
    // As the migration that introduced the count does with the balances
    // already there.
    diesel::sql_query(
        "UPDATE negative_balance_count \
         SET workers = (SELECT count(*) FROM account_balance WHERE balance_cents < 0)",
    )
    .execute(c)?;
    diesel::sql_query(
        "INSERT INTO day_top_reward (day, transaction_id, task_id, amount_cents) \
         SELECT DISTINCT ON (business_day) business_day, id, task_id, amount_cents \
         FROM ledger_transaction WHERE kind = 'reward' \
         ORDER BY business_day, amount_cents DESC, id",
    )
    .execute(c)?;
    diesel::sql_query("ANALYZE").execute(c)?;
    Ok(())
}

/// A thousand accounts that have a balance.
fn ledger_accounts(c: &mut PgConnection) -> anyhow::Result<Vec<Uuid>> {
    use analytics::store::schema::account_balance;
    Ok(account_balance::table
        .select(account_balance::account_id)
        .order(account_balance::account_id)
        .limit(1000)
        .load(c)?)
}

/// Runs `f` `n` times and prints its latencies.
fn measure(
    name: &str,
    n: usize,
    mut f: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for i in 0..n {
        let t = Instant::now();
        f(i)?;
        h.record(t.elapsed().as_micros().max(1) as u64)?;
    }
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name:<44} n={n:<6} p50={:>7.3} ms  p99={:>7.3} ms  max={:>7.3} ms",
        ms(0.5),
        ms(0.99),
        h.max() as f64 / 1000.0
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let url = var(
        "BENCH_DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/analytics_bench",
    );
    let rows: i64 = var("BENCH_ROWS", "1000000").parse()?;
    let n: usize = var("BENCH_REQUESTS", "2000").parse()?;
    recreate(&url)?;
    let mut c = PgConnection::establish(&url)?;
    c.run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("migrations: {e}"))?;
    let t = Instant::now();
    load(&mut c, rows)?;
    println!(
        "loaded {rows} ledger rows in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let first = NaiveDate::from_ymd_opt(2025, 1, 1).expect("a date");
    measure("earnings of a day (earnings/today)", n, |i| {
        store::earnings_of(&mut c, first + Days::new((i % 730) as u64))?;
        Ok(())
    })?;
    measure("workers with a negative balance", n, |_| {
        store::negative_balances(&mut c)?;
        Ok(())
    })?;
    for period in [Period::Day, Period::Month] {
        let name = format!("most expensive tasks, 366 days, per {}", period.name());
        measure(&name, n, |i| {
            let from = first + Days::new((i % 364) as u64);
            let range = DayRange {
                from,
                to: from + Days::new(365),
            };
            store::most_expensive(&mut c, period, range)?;
            Ok(())
        })?;
    }
    measure("applying a new transaction", n, |i| {
        let day = first + Days::new((i % 730) as u64);
        let t = Transaction {
            id: Uuid::now_v7(),
            account_id: Uuid::now_v7(),
            kind: if i % 2 == 0 { Kind::Fee } else { Kind::Reward },
            amount_cents: if i % 2 == 0 { -300 } else { 2_000 },
            balance_after_cents: -300,
            task_id: Some(Uuid::now_v7()),
            description: "bench".into(),
            business_day: day,
            created_at: Utc::now(),
        };
        store::apply_transaction(&mut c, &t, rows + 1 + i as i64)?;
        Ok(())
    })?;
    // Accounts that have a balance already, each crossing zero in turn (in
    // debt on even requests, out of it on odd ones): the upsert replaces a
    // row and the count of workers in debt moves every time.
    let accounts: Vec<Uuid> = ledger_accounts(&mut c)?;
    measure("applying a transaction, known account", n, |i| {
        let t = Transaction {
            id: Uuid::now_v7(),
            account_id: accounts[i % accounts.len()],
            kind: Kind::Fee,
            amount_cents: -300,
            balance_after_cents: if (i / accounts.len()).is_multiple_of(2) {
                -300
            } else {
                300
            },
            task_id: None,
            description: "bench".into(),
            business_day: first + Days::new((i % 730) as u64),
            created_at: Utc::now(),
        };
        store::apply_transaction(&mut c, &t, rows + 1 + (n + i) as i64)?;
        Ok(())
    })?;
    drop(c);
    if var("BENCH_KEEP", "0") != "1" {
        drop_database(&url)?;
    }
    Ok(())
}
