//! The ledger: entries appended once each, with the account's balance
//! moved and the entry published (`accounting.transaction.v1`, through the
//! outbox) in the same transaction; pages of an account's entries; the
//! fees and rewards of each day.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use contracts::{
    topics::{self, accounting::Kind, accounting::Transaction},
    Envelope, Op, Source,
};
use diesel::{
    pg::PgConnection,
    prelude::*,
    sql_types::{Array, BigInt, Date, Timestamptz},
};
use platform::telemetry::TraceContext;
use serde::Serialize;
use uuid::Uuid;

use super::schema::{balance, ledger_entry};

/// The name a kind is stored and shown as (its serde name).
pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Fee => "fee",
        Kind::Reward => "reward",
        Kind::Payout => "payout",
        Kind::Correction => "correction",
    }
}

fn kind_of(name: &str) -> Kind {
    match name {
        "fee" => Kind::Fee,
        "reward" => Kind::Reward,
        "payout" => Kind::Payout,
        // The table's CHECK allows nothing else.
        _ => Kind::Correction,
    }
}

/// An entry to append. `source_key` names what it applies (a task event's
/// fee or reward, a day's payout to an account): an entry whose key is in
/// the ledger already is not appended again.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub account_id: Uuid,
    pub kind: Kind,
    pub amount_cents: i64,
    pub task_id: Option<Uuid>,
    pub description: String,
    pub business_day: NaiveDate,
    pub source_key: String,
    /// The entry a correction reverses (each is reversed at most once).
    pub reverses: Option<Uuid>,
}

/// One ledger entry as stored; `seq` orders an account's entries (and
/// pages them).
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = ledger_entry)]
pub struct Entry {
    pub seq: i64,
    pub id: Uuid,
    pub account_id: Uuid,
    pub kind: String,
    pub amount_cents: i64,
    pub balance_after_cents: i64,
    pub task_id: Option<Uuid>,
    pub description: String,
    pub business_day: NaiveDate,
    pub created_at: DateTime<Utc>,
}

impl Entry {
    /// The entry as `accounting.transaction.v1` carries it.
    pub fn transaction(&self) -> Transaction {
        Transaction {
            id: self.id,
            account_id: self.account_id,
            kind: kind_of(&self.kind),
            amount_cents: self.amount_cents,
            balance_after_cents: self.balance_after_cents,
            task_id: self.task_id,
            description: self.description.clone(),
            business_day: self.business_day,
            created_at: self.created_at,
        }
    }
}

/// Where the service's events say they come from.
pub fn source(table: &str) -> Source {
    Source {
        service: "accounting".into(),
        table: table.into(),
    }
}

/// Appends `e` unless its source key is in the ledger already; the
/// account's balance moves and the entry goes to the outbox in the same
/// transaction. Answers the entry appended, or `None` when it had been.
pub fn append(conn: &mut PgConnection, e: &NewEntry) -> QueryResult<Option<Entry>> {
    let trace = platform::telemetry::current();
    Ok(append_many(conn, std::slice::from_ref(e), &[trace.as_ref()])?.pop())
}

/// [`append`] for a run of entries, in order, in a few statements rather
/// than a few per entry (the consumer applying a backlog of task events):
/// entries whose key is in the ledger, or earlier in `entries`, are
/// skipped; the accounts' rows are locked in id order (as the close locks
/// them), each entry's balance follows the one before it on its account,
/// and the entries go to the outbox, `traces[i]` being `entries[i]`'s
/// trace. Answers the entries appended, in order.
pub fn append_many(
    conn: &mut PgConnection,
    entries: &[NewEntry],
    traces: &[Option<&TraceContext>],
) -> QueryResult<Vec<Entry>> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    conn.transaction(|c| {
        // The accounts' rows, locked first: every append locks its
        // account's row, so no other can add an entry for these accounts
        // (or take one of these keys, which name the account's money)
        // until this one commits, and the balances read stay true.
        let mut accounts: Vec<Uuid> = entries.iter().map(|e| e.account_id).collect();
        accounts.sort_unstable();
        accounts.dedup();
        diesel::insert_into(balance::table)
            .values(
                accounts
                    .iter()
                    .map(|a| balance::account_id.eq(*a))
                    .collect::<Vec<_>>(),
            )
            .on_conflict_do_nothing()
            .execute(c)?;
        let mut balances: HashMap<Uuid, i64> = balance::table
            .filter(balance::account_id.eq_any(&accounts))
            .order(balance::account_id)
            .select((balance::account_id, balance::balance_cents))
            .for_update()
            .load::<(Uuid, i64)>(c)?
            .into_iter()
            .collect();
        let keys: Vec<&str> = entries.iter().map(|e| e.source_key.as_str()).collect();
        let mut taken: HashSet<String> = ledger_entry::table
            .filter(ledger_entry::source_key.eq_any(&keys))
            .select(ledger_entry::source_key)
            .load::<String>(c)?
            .into_iter()
            .collect();
        let fresh: Vec<usize> = (0..entries.len())
            .filter(|&i| taken.insert(entries[i].source_key.clone()))
            .collect();
        if fresh.is_empty() {
            return Ok(Vec::new());
        }
        let now = Utc::now();
        let rows: Vec<_> = fresh
            .iter()
            .map(|&i| {
                let e = &entries[i];
                let after = balances.entry(e.account_id).or_default();
                *after += e.amount_cents;
                (
                    ledger_entry::id.eq(Uuid::now_v7()),
                    ledger_entry::account_id.eq(e.account_id),
                    ledger_entry::kind.eq(kind_name(e.kind)),
                    ledger_entry::amount_cents.eq(e.amount_cents),
                    ledger_entry::balance_after_cents.eq(*after),
                    ledger_entry::task_id.eq(e.task_id),
                    ledger_entry::description.eq(&e.description),
                    ledger_entry::business_day.eq(e.business_day),
                    ledger_entry::created_at.eq(now),
                    ledger_entry::source_key.eq(&e.source_key),
                    ledger_entry::reverses.eq(e.reverses),
                )
            })
            .collect();
        // The multi-row insert numbers the rows in the order given.
        let mut appended: Vec<Entry> = diesel::insert_into(ledger_entry::table)
            .values(rows)
            .returning(Entry::as_returning())
            .get_results(c)?;
        appended.sort_unstable_by_key(|e| e.seq);
        let mut moved: Vec<Uuid> = fresh.iter().map(|&i| entries[i].account_id).collect();
        moved.sort_unstable();
        moved.dedup();
        let (ids, amounts): (Vec<Uuid>, Vec<i64>) = moved.iter().map(|a| (*a, balances[a])).unzip();
        platform::db::prepared(
            "UPDATE balance SET balance_cents = v.balance_cents, updated_at = $1 \
             FROM unnest($2::uuid[], $3::int8[]) AS v(account_id, balance_cents) \
             WHERE balance.account_id = v.account_id",
        )
        .bind::<Timestamptz, _>(now)
        .bind::<Array<diesel::sql_types::Uuid>, _>(ids)
        .bind::<Array<BigInt>, _>(amounts)
        .execute(c)?;
        let envelopes = appended
            .iter()
            .map(published)
            .collect::<QueryResult<Vec<_>>>()?;
        let traces: Vec<Option<&TraceContext>> = fresh
            .iter()
            .map(|&i| traces.get(i).copied().flatten())
            .collect();
        platform::events::enqueue_traced(c, topics::ACCOUNTING_TRANSACTION, &envelopes, &traces)?;
        Ok(appended)
    })
}

/// The event that publishes `entry` (`accounting.transaction.v1`, keyed by
/// account, its version the ledger's sequence number).
fn published(entry: &Entry) -> QueryResult<Envelope> {
    let payload = serde_json::to_value(entry.transaction())
        .map_err(|err| diesel::result::Error::SerializationError(Box::new(err)))?;
    Ok(Envelope::new(
        Op::Create,
        "transaction",
        entry.account_id.to_string(),
        entry.seq,
        source("ledger_entry"),
        None,
        Some(payload),
    ))
}

/// The reward of the task's latest completion, unless a correction has
/// reversed it already (the task left Completed since).
pub fn unreversed_reward(conn: &mut PgConnection, task: Uuid) -> QueryResult<Option<Entry>> {
    let latest: Option<Entry> = ledger_entry::table
        .filter(ledger_entry::task_id.eq(task))
        .filter(ledger_entry::kind.eq(kind_name(Kind::Reward)))
        .order(ledger_entry::seq.desc())
        .select(Entry::as_select())
        .first(conn)
        .optional()?;
    let Some(reward) = latest else {
        return Ok(None);
    };
    let reversed: bool = diesel::select(diesel::dsl::exists(
        ledger_entry::table.filter(ledger_entry::reverses.eq(reward.id)),
    ))
    .get_result(conn)?;
    Ok((!reversed).then_some(reward))
}

/// The account's balance (0 for an account without entries).
pub fn balance_of(conn: &mut PgConnection, account: Uuid) -> QueryResult<i64> {
    Ok(balance::table
        .find(account)
        .select(balance::balance_cents)
        .first(conn)
        .optional()?
        .unwrap_or(0))
}

/// Accounts with a positive balance, locked, in id order.
pub fn positive_balances(conn: &mut PgConnection) -> QueryResult<Vec<(Uuid, i64)>> {
    balance::table
        .filter(balance::balance_cents.gt(0))
        .order(balance::account_id)
        .select((balance::account_id, balance::balance_cents))
        .for_update()
        .load(conn)
}

/// The account's entries, newest first: at most `limit`, older than
/// `before` (a `seq`) when given.
pub fn entries(
    conn: &mut PgConnection,
    account: Uuid,
    limit: i64,
    before: Option<i64>,
) -> QueryResult<Vec<Entry>> {
    let mut q = ledger_entry::table
        .filter(ledger_entry::account_id.eq(account))
        .select(Entry::as_select())
        .order(ledger_entry::seq.desc())
        .limit(limit)
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(ledger_entry::seq.lt(b));
    }
    q.load(conn)
}

/// The payouts of a day's close.
pub fn payouts_of(conn: &mut PgConnection, day: NaiveDate) -> QueryResult<Vec<Entry>> {
    ledger_entry::table
        .filter(ledger_entry::business_day.eq(day))
        .filter(ledger_entry::kind.eq(kind_name(Kind::Payout)))
        .order(ledger_entry::account_id)
        .select(Entry::as_select())
        .load(conn)
}

/// A day's fees collected and rewards paid, both as positive amounts;
/// a reward reversed (a correction naming it) lowers the rewards of the
/// day the correction is filed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct DayTotals {
    #[diesel(sql_type = Date)]
    pub day: NaiveDate,
    #[diesel(sql_type = BigInt)]
    pub fees_cents: i64,
    #[diesel(sql_type = BigInt)]
    pub rewards_cents: i64,
}

/// The fees and rewards of each day from `from` to `to` that has any.
pub fn day_totals(
    conn: &mut PgConnection,
    from: NaiveDate,
    to: NaiveDate,
) -> QueryResult<Vec<DayTotals>> {
    platform::db::prepared(
        "SELECT business_day AS day, \
                COALESCE(-SUM(amount_cents) FILTER (WHERE kind = 'fee'), 0)::int8 AS fees_cents, \
                COALESCE(SUM(amount_cents) FILTER (WHERE kind = 'reward' OR reverses IS NOT NULL), 0)::int8 AS rewards_cents \
         FROM ledger_entry \
         WHERE business_day BETWEEN $1 AND $2 \
           AND (kind IN ('fee', 'reward') OR (kind = 'correction' AND reverses IS NOT NULL)) \
         GROUP BY business_day ORDER BY business_day",
    )
    .bind::<Date, _>(from)
    .bind::<Date, _>(to)
    .load(conn)
}
