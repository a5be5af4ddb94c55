//! The accounting transactions applied, and the aggregates the reports
//! read: fees and rewards per business day, each account's latest balance
//! and how many accounts are below zero, each day's highest reward. A
//! transaction is applied once (its id is the key); its aggregates move in
//! the same database transaction.
//!
//! A `correction` for a task is accounting's reversal of that task's
//! latest reward to the same account (the task left Completed): it lowers
//! the rewards of its own business day, and the reward it reverses no
//! longer counts as its day's highest.

use chrono::NaiveDate;
use contracts::topics::accounting::{Kind, Transaction};
use diesel::{
    pg::PgConnection,
    prelude::*,
    sql_types::{BigInt, Date, Nullable, Uuid as SqlUuid},
};
use uuid::Uuid;

use super::schema::{
    account_balance, day_earnings, day_top_reward, ledger_transaction, negative_balance_count,
};

/// The name a kind is stored as (its serde name).
pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Fee => "fee",
        Kind::Reward => "reward",
        Kind::Payout => "payout",
        Kind::Correction => "correction",
    }
}

/// Applies `t` (published with `version`, the ledger's sequence number)
/// unless it was applied already. Returns whether it was new.
pub fn apply_transaction(
    conn: &mut PgConnection,
    t: &Transaction,
    version: i64,
) -> QueryResult<bool> {
    conn.transaction(|c| {
        let n = diesel::insert_into(ledger_transaction::table)
            .values((
                ledger_transaction::id.eq(t.id),
                ledger_transaction::account_id.eq(t.account_id),
                ledger_transaction::kind.eq(kind_name(t.kind)),
                ledger_transaction::amount_cents.eq(t.amount_cents),
                ledger_transaction::balance_after_cents.eq(t.balance_after_cents),
                ledger_transaction::task_id.eq(t.task_id),
                ledger_transaction::business_day.eq(t.business_day),
                ledger_transaction::created_at.eq(t.created_at),
                ledger_transaction::version.eq(version),
            ))
            .on_conflict(ledger_transaction::id)
            .do_nothing()
            .execute(c)?;
        if n == 0 {
            return Ok(false);
        }
        apply_balance(c, t, version)?;
        match t.kind {
            Kind::Fee => add_to_day(c, t.business_day, -t.amount_cents, 0)?,
            Kind::Reward => {
                add_to_day(c, t.business_day, 0, t.amount_cents)?;
                diesel::sql_query(
                    "INSERT INTO day_top_reward (day, transaction_id, task_id, amount_cents) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (day) DO UPDATE \
                     SET transaction_id = excluded.transaction_id, \
                         task_id = excluded.task_id, amount_cents = excluded.amount_cents \
                     WHERE excluded.amount_cents > day_top_reward.amount_cents \
                        OR (excluded.amount_cents = day_top_reward.amount_cents \
                            AND excluded.transaction_id < day_top_reward.transaction_id)",
                )
                .bind::<Date, _>(t.business_day)
                .bind::<SqlUuid, _>(t.id)
                .bind::<Nullable<SqlUuid>, _>(t.task_id)
                .bind::<BigInt, _>(t.amount_cents)
                .execute(c)?;
            }
            Kind::Correction => {
                if let Some(task) = t.task_id {
                    add_to_day(c, t.business_day, 0, t.amount_cents)?;
                    reverse_reward(c, t, task, version)?;
                }
            }
            // Payouts move money out to the worker, not management's
            // earnings.
            Kind::Payout => {}
        }
        Ok(true)
    })
}

/// Makes `t`'s balance its account's latest unless a transaction of a
/// higher version was applied already (one arriving late does not take a
/// balance back), and moves the count of workers in debt when the balance
/// it replaced and the new one lie on different sides of zero. A new
/// account counts as replacing a balance of zero.
fn apply_balance(c: &mut PgConnection, t: &Transaction, version: i64) -> QueryResult<()> {
    // The balance replaced: `Some(None)` for a new account, `None` when
    // the account holds a higher version and nothing changed.
    let replaced = match replace_balance(c, t, version)? {
        Some(before) => Some(Some(before)),
        None if insert_balance(c, t, version)? => Some(None),
        // The insert met a row: either the account holds a higher version
        // or another transaction inserted its row after the update looked
        // (the insert waited for it to commit, so the update sees it now).
        None => replace_balance(c, t, version)?.map(Some),
    };
    let Some(before) = replaced else {
        return Ok(());
    };
    let delta = i64::from(t.balance_after_cents < 0) - i64::from(before.is_some_and(|b| b < 0));
    if delta != 0 {
        diesel::sql_query("UPDATE negative_balance_count SET workers = workers + $1")
            .bind::<BigInt, _>(delta)
            .execute(c)?;
    }
    Ok(())
}

/// Replaces the account's balance when it holds a lower version than
/// `version`; returns the balance replaced. The sub-select locks the row
/// first, so that the balance returned is the one the update replaced
/// even when another transaction changed it meanwhile.
fn replace_balance(
    c: &mut PgConnection,
    t: &Transaction,
    version: i64,
) -> QueryResult<Option<i64>> {
    #[derive(QueryableByName)]
    struct Before {
        #[diesel(sql_type = BigInt)]
        balance_cents: i64,
    }
    let before: Option<Before> = diesel::sql_query(
        "UPDATE account_balance AS a SET balance_cents = $2, version = $3 \
         FROM (SELECT account_id, balance_cents FROM account_balance \
               WHERE account_id = $1 FOR UPDATE) AS old \
         WHERE a.account_id = old.account_id AND a.version < $3 \
         RETURNING old.balance_cents",
    )
    .bind::<SqlUuid, _>(t.account_id)
    .bind::<BigInt, _>(t.balance_after_cents)
    .bind::<BigInt, _>(version)
    .get_result(c)
    .optional()?;
    Ok(before.map(|b| b.balance_cents))
}

/// Inserts the balance of an account seen for the first time; returns
/// false when the account has a row already.
fn insert_balance(c: &mut PgConnection, t: &Transaction, version: i64) -> QueryResult<bool> {
    let n = diesel::insert_into(account_balance::table)
        .values((
            account_balance::account_id.eq(t.account_id),
            account_balance::balance_cents.eq(t.balance_after_cents),
            account_balance::version.eq(version),
        ))
        .on_conflict(account_balance::account_id)
        .do_nothing()
        .execute(c)?;
    Ok(n > 0)
}

/// Marks the reward `t` reverses (the task's latest reward to the same
/// account not reversed yet) and, when it was its day's highest, takes
/// that day's highest among the rewards left.
fn reverse_reward(
    c: &mut PgConnection,
    t: &Transaction,
    task: Uuid,
    version: i64,
) -> QueryResult<()> {
    #[derive(QueryableByName)]
    struct Reversed {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
        #[diesel(sql_type = Date)]
        business_day: NaiveDate,
    }
    let reversed: Option<Reversed> = diesel::sql_query(
        "UPDATE ledger_transaction SET reversed_by = $1 \
         WHERE id = (SELECT id FROM ledger_transaction \
                     WHERE kind = 'reward' AND task_id = $2 AND account_id = $3 \
                       AND reversed_by IS NULL AND version < $4 \
                     ORDER BY version DESC LIMIT 1) \
         RETURNING id, business_day",
    )
    .bind::<SqlUuid, _>(t.id)
    .bind::<SqlUuid, _>(task)
    .bind::<SqlUuid, _>(t.account_id)
    .bind::<BigInt, _>(version)
    .get_result(c)
    .optional()?;
    let Some(r) = reversed else {
        return Ok(());
    };
    let dropped = diesel::delete(
        day_top_reward::table
            .filter(day_top_reward::day.eq(r.business_day))
            .filter(day_top_reward::transaction_id.eq(r.id)),
    )
    .execute(c)?;
    if dropped > 0 {
        diesel::sql_query(
            "INSERT INTO day_top_reward (day, transaction_id, task_id, amount_cents) \
             SELECT business_day, id, task_id, amount_cents FROM ledger_transaction \
             WHERE business_day = $1 AND kind = 'reward' AND reversed_by IS NULL \
             ORDER BY amount_cents DESC, id LIMIT 1",
        )
        .bind::<Date, _>(r.business_day)
        .execute(c)?;
    }
    Ok(())
}

fn add_to_day(c: &mut PgConnection, day: NaiveDate, fees: i64, rewards: i64) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO day_earnings (day, fees_cents, rewards_cents) VALUES ($1, $2, $3) \
         ON CONFLICT (day) DO UPDATE \
         SET fees_cents = day_earnings.fees_cents + excluded.fees_cents, \
             rewards_cents = day_earnings.rewards_cents + excluded.rewards_cents",
    )
    .bind::<Date, _>(day)
    .bind::<BigInt, _>(fees)
    .bind::<BigInt, _>(rewards)
    .execute(c)
    .map(|_| ())
}

/// Fees collected and rewards paid on `day` (zeros for a day without).
pub fn earnings_of(conn: &mut PgConnection, day: NaiveDate) -> QueryResult<(i64, i64)> {
    Ok(day_earnings::table
        .find(day)
        .select((day_earnings::fees_cents, day_earnings::rewards_cents))
        .first(conn)
        .optional()?
        .unwrap_or((0, 0)))
}

/// How many accounts' latest balance is below zero: the one row of
/// `negative_balance_count`, kept by [`apply_transaction`].
pub fn negative_balances(conn: &mut PgConnection) -> QueryResult<i64> {
    Ok(negative_balance_count::table
        .select(negative_balance_count::workers)
        .first(conn)
        .optional()?
        .unwrap_or(0))
}
