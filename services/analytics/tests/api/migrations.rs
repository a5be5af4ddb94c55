//! The read models' migrations run into a database that holds data.

use analytics::{startup::MIGRATIONS, store};
use diesel::{pg::PgConnection, prelude::*, sql_types::BigInt};
use diesel_migrations::MigrationHarness;
use testkit::TestDatabase;

/// A database migrated before the count of workers in debt was kept
/// reports the accounts already below zero once migrated.
#[test]
fn the_count_of_workers_in_debt_starts_from_the_balances_already_applied() {
    let db = TestDatabase::create("analytics_migration");
    let mut c = PgConnection::establish(&db.url).expect("the test database");
    let pending = c.pending_migrations(MIGRATIONS).expect("the migrations");
    let count_at = pending
        .iter()
        .position(|m| m.name().to_string().ends_with("_negative_balance_count"))
        .expect("the migration that keeps the count");
    for m in &pending[..count_at] {
        c.run_migration(&**m).expect("an earlier migration runs");
    }
    // 7 accounts below zero of 20; one exactly at zero is not in debt.
    diesel::sql_query(
        "INSERT INTO account_balance (account_id, balance_cents, version) \
         SELECT gen_random_uuid(), $1 - i * 100, i FROM generate_series(1, 20) i",
    )
    .bind::<BigInt, _>(1_300)
    .execute(&mut c)
    .expect("balances");
    c.run_pending_migrations(MIGRATIONS)
        .expect("the remaining migrations run");
    assert_eq!(store::negative_balances(&mut c).expect("the count"), 7);
}
