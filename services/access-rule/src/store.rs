//! Users, cards, the event log, restrictions and the rules' tripwires in
//! PostgreSQL. Synchronous diesel functions, called through
//! `platform::db::with_conn`.
//!
//! Concurrency: every change to a user runs in one transaction that first
//! locks the user's row (`INSERT .. ON CONFLICT DO NOTHING`, then
//! `SELECT .. FOR UPDATE`), so concurrent events for one user are judged one
//! after the other, each seeing all the earlier ones. An event locks at most its
//! user's row and then one population shard, so events cannot deadlock.
//! A rule's tripwire is checked after the restricting event
//! committed (see [`check_tripwire`]). Every restriction, lift, trip and reset writes its
//! `access.restriction.v1` event to the outbox in the same transaction.

use chrono::{DateTime, Utc};
use diesel::{dsl::count, pg::PgConnection, prelude::*};
use platform::{
    db::{is_unique_violation, prepared},
    events::{enqueue, enqueue_many, topics, Envelope, Op, Source},
};
use serde::Serialize;
use serde_json::{json, Value};

use crate::domain::{
    affected_rules, decide, holds, reason, suspended, trips, window_start, Change, Event,
    EventKind, Facts, Restrictions, Rule, RulesConfig, UserId,
};

diesel::table! {
    users (user_id) {
        user_id -> Text,
        scam_flags -> Int8,
        card_count -> Int8,
        zip_count -> Int8,
        total_spend_cents -> Int8,
        chargeback_cents -> Int8,
        scam_restricted_at -> Nullable<Timestamptz>,
        zip_restricted_at -> Nullable<Timestamptz>,
        chargeback_restricted_at -> Nullable<Timestamptz>,
        is_active -> Bool,
        account_version -> Int8,
        version -> Int8,
        first_event_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    cards (user_id, zip_code, last_four_digits) {
        user_id -> Text,
        zip_code -> Text,
        last_four_digits -> Text,
        total_spend_cents -> Int8,
        added_at -> Timestamptz,
    }
}

diesel::table! {
    events (id) {
        id -> Int8,
        event_id -> Nullable<Text>,
        user_id -> Text,
        name -> Text,
        properties -> Jsonb,
        outcome -> Jsonb,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    restriction_log (id) {
        id -> Int8,
        user_id -> Text,
        rule -> Text,
        action -> Text,
        cause -> Text,
        actor -> Nullable<Text>,
        reason -> Text,
        at -> Timestamptz,
    }
}

diesel::table! {
    rules (rule) {
        rule -> Text,
        tripped_at -> Nullable<Timestamptz>,
        suspended_until -> Nullable<Timestamptz>,
        last_reset_at -> Nullable<Timestamptz>,
        last_reset_by -> Nullable<Text>,
        trip_count -> Int8,
        version -> Int8,
    }
}

diesel::table! {
    population (shard) {
        shard -> Int2,
        users -> Int8,
    }
}

diesel::table! {
    superusers (account_id) {
        account_id -> Text,
        is_superuser -> Bool,
        version -> Int8,
    }
}

diesel::allow_tables_to_appear_in_same_query!(users, cards, events, restriction_log);

pub const EVENT_ID_UNIQUE: &str = "events_event_id_key";
/// The restriction a deactivated account carries (from `iam.user.v1`).
pub const ACCOUNT_INACTIVE: &str = "account_inactive";
const POPULATION_SHARDS: u32 = 16;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub user_id: String,
    pub scam_flags: i64,
    pub card_count: i64,
    pub zip_count: i64,
    pub total_spend_cents: i64,
    pub chargeback_cents: i64,
    pub scam_restricted_at: Option<DateTime<Utc>>,
    pub zip_restricted_at: Option<DateTime<Utc>>,
    pub chargeback_restricted_at: Option<DateTime<Utc>>,
    pub is_active: bool,
    pub account_version: i64,
    pub version: i64,
    pub first_event_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl UserRow {
    pub fn facts(&self) -> Facts {
        Facts {
            scam_flags: self.scam_flags,
            card_count: self.card_count,
            zip_count: self.zip_count,
            total_spend_cents: self.total_spend_cents,
            chargeback_cents: self.chargeback_cents,
        }
    }

    fn set_facts(&mut self, f: Facts) {
        self.scam_flags = f.scam_flags;
        self.card_count = f.card_count;
        self.zip_count = f.zip_count;
        self.total_spend_cents = f.total_spend_cents;
        self.chargeback_cents = f.chargeback_cents;
    }

    pub fn restricted_at(&self, rule: Rule) -> Option<DateTime<Utc>> {
        match rule {
            Rule::ScamFlags => self.scam_restricted_at,
            Rule::CardZipRatio => self.zip_restricted_at,
            Rule::ChargebackRatio => self.chargeback_restricted_at,
        }
    }

    fn set_restricted_at(&mut self, rule: Rule, at: Option<DateTime<Utc>>) {
        match rule {
            Rule::ScamFlags => self.scam_restricted_at = at,
            Rule::CardZipRatio => self.zip_restricted_at = at,
            Rule::ChargebackRatio => self.chargeback_restricted_at = at,
        }
    }

    /// The user's restrictions as published on `access.restriction.v1`.
    fn access_view(&self, cfg: &RulesConfig) -> Value {
        let facts = self.facts();
        let restrictions: Vec<Value> = Rule::ALL
            .into_iter()
            .filter_map(|r| {
                self.restricted_at(r).map(|since| {
                    json!({"rule": r, "capability": r.capability(), "since": since,
                           "reason": reason(r, &facts, cfg)})
                })
            })
            .collect();
        json!({"user_id": self.user_id, "is_active": self.is_active,
               "restrictions": restrictions, "version": self.version})
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = rules)]
pub struct RuleRow {
    pub rule: String,
    pub tripped_at: Option<DateTime<Utc>>,
    pub suspended_until: Option<DateTime<Utc>>,
    pub last_reset_at: Option<DateTime<Utc>>,
    pub last_reset_by: Option<String>,
    pub trip_count: i64,
    pub version: i64,
}

impl RuleRow {
    pub fn rule(&self) -> Option<Rule> {
        Rule::parse(&self.rule)
    }

    /// Restrictions before the last trip or reset do not count again: a
    /// trip consumes its evidence, a reset starts afresh.
    pub fn counted_since(&self) -> Option<DateTime<Utc>> {
        self.last_reset_at.max(self.tripped_at)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = cards)]
pub struct CardRow {
    pub zip_code: String,
    pub last_four_digits: String,
    pub total_spend_cents: i64,
    pub added_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = restriction_log)]
pub struct LogRow {
    pub rule: String,
    pub action: String,
    pub cause: String,
    pub actor: Option<String>,
    pub reason: String,
    pub at: DateTime<Utc>,
}

fn source(table: &str) -> Source {
    Source {
        service: "access-rule".into(),
        table: table.into(),
    }
}

/// Takes the row lock on `user_id`, creating the row if needed.
fn lock_user(conn: &mut PgConnection, user_id: &str) -> QueryResult<UserRow> {
    diesel::insert_into(users::table)
        .values(users::user_id.eq(user_id))
        .on_conflict_do_nothing()
        .execute(conn)?;
    lock_existing_user(conn, user_id)?.ok_or(diesel::result::Error::NotFound)
}

fn lock_existing_user(conn: &mut PgConnection, user_id: &str) -> QueryResult<Option<UserRow>> {
    users::table
        .find(user_id)
        .select(UserRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

fn save_user(conn: &mut PgConnection, u: &UserRow) -> QueryResult<()> {
    diesel::update(users::table.find(&u.user_id))
        .set((
            users::scam_flags.eq(u.scam_flags),
            users::card_count.eq(u.card_count),
            users::zip_count.eq(u.zip_count),
            users::total_spend_cents.eq(u.total_spend_cents),
            users::chargeback_cents.eq(u.chargeback_cents),
            users::scam_restricted_at.eq(u.scam_restricted_at),
            users::zip_restricted_at.eq(u.zip_restricted_at),
            users::chargeback_restricted_at.eq(u.chargeback_restricted_at),
            users::is_active.eq(u.is_active),
            users::account_version.eq(u.account_version),
            users::version.eq(u.version),
            users::first_event_at.eq(u.first_event_at),
            users::updated_at.eq(u.updated_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// One restriction or lift of one user, as logged and published.
#[derive(Debug, Clone, Serialize)]
pub struct RestrictionChange {
    pub rule: String,
    pub action: Change,
    pub cause: &'static str,
    pub actor: Option<String>,
    pub reason: String,
}

/// Logs `changes` and publishes the user's new state with them. The caller
/// has bumped `after.version`.
fn record_changes(
    conn: &mut PgConnection,
    before: &UserRow,
    after: &UserRow,
    changes: &[RestrictionChange],
    cfg: &RulesConfig,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let mut records = ChangeRecords::default();
    records.add(before, after, changes, cfg, now);
    records.write(conn)?;
    // Delivered when the caller's transaction commits. These transactions
    // are few (an operator's, the account stream's, an event alone).
    crate::cache::notify_changes(conn, &records.users)?;
    records.announce();
    Ok(())
}

/// What changes of users' restrictions write besides the users' rows: the
/// restriction log and the outbox events, gathered so that a batch writes
/// each with one statement; and the users whose checks' caches must drop
/// them.
#[derive(Default)]
struct ChangeRecords {
    logs: Vec<(String, RestrictionChange, DateTime<Utc>)>,
    users: Vec<String>,
    outbox: Vec<Envelope>,
}

impl ChangeRecords {
    fn add(
        &mut self,
        before: &UserRow,
        after: &UserRow,
        changes: &[RestrictionChange],
        cfg: &RulesConfig,
        now: DateTime<Utc>,
    ) {
        self.logs.extend(
            changes
                .iter()
                .map(|c| (after.user_id.clone(), c.clone(), now)),
        );
        self.users.push(after.user_id.clone());
        let mut after_view = after.access_view(cfg);
        after_view["changes"] = json!(changes);
        self.outbox.push(Envelope::new(
            if before.version == 0 {
                Op::Create
            } else {
                Op::Update
            },
            "user_access",
            after.user_id.clone(),
            after.version,
            source("users"),
            (before.version > 0).then(|| before.access_view(cfg)),
            Some(after_view),
        ));
    }

    fn write(&self, conn: &mut PgConnection) -> QueryResult<()> {
        if self.logs.is_empty() {
            return Ok(());
        }
        use diesel::sql_types::{Array, Nullable, Text, Timestamptz};
        let logs = &self.logs;
        let text = |f: fn(&(String, RestrictionChange, DateTime<Utc>)) -> &str| {
            logs.iter().map(f).collect::<Vec<&str>>()
        };
        prepared(
            "INSERT INTO restriction_log (user_id, rule, action, cause, actor, reason, at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                                  $6::text[], $7::timestamptz[])",
        )
        .bind::<Array<Text>, _>(text(|(u, _, _)| u))
        .bind::<Array<Text>, _>(text(|(_, c, _)| &c.rule))
        .bind::<Array<Text>, _>(text(|(_, c, _)| c.action.as_str()))
        .bind::<Array<Text>, _>(text(|(_, c, _)| c.cause))
        .bind::<Array<Nullable<Text>>, _>(
            logs.iter()
                .map(|(_, c, _)| c.actor.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Text>, _>(text(|(_, c, _)| &c.reason))
        .bind::<Array<Timestamptz>, _>(logs.iter().map(|(_, _, at)| *at).collect::<Vec<_>>())
        .execute(conn)?;
        enqueue_many(conn, topics::RESTRICTION, &self.outbox)
    }

    /// The log lines of the changes; once they are committed.
    fn announce(&self) {
        for (user_id, c, _) in &self.logs {
            tracing::info!(
                user.id = %user_id,
                rule = %c.rule,
                action = c.action.as_str(),
                cause = c.cause,
                actor = c.actor.as_deref().unwrap_or(""),
                reason = %c.reason,
                "restriction changed"
            );
        }
    }
}

/// What `POST /event` answers, stored with the event for replays.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub name: &'static str,
    pub event_id: Option<String>,
    pub user_id: String,
    pub effect: &'static str,
    /// The user's facts after the event.
    pub facts: Facts,
    pub restricted: Vec<Rule>,
    pub lifted: Vec<Rule>,
}

/// The result of offering an event.
pub enum EventResult {
    /// Applied; the tripwires of the rules in `restricted` must be checked.
    Applied {
        outcome: Value,
        restricted: Vec<Rule>,
        /// The user's restrictions changed (an event is in the outbox).
        changed: bool,
    },
    /// The event_id was seen before with the same event: its outcome.
    Replayed { outcome: Value },
    /// The event_id was seen before with a different event.
    Reused,
}

#[derive(Clone)]
struct StoredEvent {
    name: String,
    properties: Value,
    outcome: Value,
}

fn find_event(conn: &mut PgConnection, event_id: &str) -> QueryResult<Option<StoredEvent>> {
    events::table
        .filter(events::event_id.eq(event_id))
        .select((events::name, events::properties, events::outcome))
        .first::<(String, Value, Value)>(conn)
        .optional()
        .map(|r| {
            r.map(|(name, properties, outcome)| StoredEvent {
                name,
                properties,
                outcome,
            })
        })
}

fn compare(prev: StoredEvent, event: &Event) -> EventResult {
    if prev.name == event.kind.name() && prev.properties == event.canonical_properties() {
        EventResult::Replayed {
            outcome: prev.outcome,
        }
    } else {
        EventResult::Reused
    }
}

enum TxError {
    Db(diesel::result::Error),
    /// Found the event_id under the user's lock: roll back, answer it.
    Seen(StoredEvent),
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        TxError::Db(e)
    }
}

/// Applies one event in one transaction: durable when this returns.
pub fn apply_event(
    conn: &mut PgConnection,
    event: &Event,
    cfg: &RulesConfig,
) -> QueryResult<EventResult> {
    let event_id = event.event_id.as_ref().map(|e| e.as_str().to_owned());
    if let Some(id) = &event_id {
        if let Some(prev) = find_event(conn, id)? {
            return Ok(compare(prev, event));
        }
    }
    match conn.transaction(|c| apply_locked(c, event, cfg)) {
        Ok((outcome, restricted, changed)) => Ok(EventResult::Applied {
            outcome,
            restricted,
            changed,
        }),
        Err(TxError::Seen(prev)) => Ok(compare(prev, event)),
        Err(TxError::Db(e)) if is_unique_violation(&e, EVENT_ID_UNIQUE) => {
            // The same event_id committed by another user's event meanwhile.
            let id = event_id.as_deref().unwrap_or_default();
            match find_event(conn, id)? {
                Some(prev) => Ok(compare(prev, event)),
                None => Err(e),
            }
        }
        Err(TxError::Db(e)) => Err(e),
    }
}

fn apply_locked(
    conn: &mut PgConnection,
    event: &Event,
    cfg: &RulesConfig,
) -> Result<(Value, Vec<Rule>, bool), TxError> {
    let before = lock_user(conn, event.user_id.as_str())?;
    if let Some(id) = &event.event_id {
        if let Some(prev) = find_event(conn, id.as_str())? {
            return Err(TxError::Seen(prev));
        }
    }
    let now = Utc::now();
    let e = evaluate(conn, event, &before, cfg, now)?;
    save_user(conn, &e.after)?;
    if !e.changes.is_empty() {
        record_changes(conn, &before, &e.after, &e.changes, cfg, now)?;
    }
    insert_event(conn, event, &e.outcome, now)?;
    if e.new_user {
        // Last: the shard's row stays locked for as short as possible, and
        // after the event_id's unique check, so that two new users' events
        // resent with one id cannot wait on each other.
        let shard = population_shard(event.user_id.as_str());
        diesel::update(population::table.find(shard))
            .set(population::users.eq(population::users + 1))
            .execute(conn)?;
    }
    let changed = !e.changes.is_empty();
    Ok((e.outcome, e.restricted, changed))
}

fn insert_event(
    conn: &mut PgConnection,
    event: &Event,
    outcome: &Value,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(events::table)
        .values((
            events::event_id.eq(event.event_id.as_ref().map(|e| e.as_str())),
            events::user_id.eq(event.user_id.as_str()),
            events::name.eq(event.kind.name()),
            events::properties.eq(event.canonical_properties()),
            events::outcome.eq(outcome),
            events::received_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// What an event does to a locked user: the new row, the restrictions it
/// changes and the outcome to answer.
struct Evaluated {
    after: UserRow,
    outcome: Value,
    restricted: Vec<Rule>,
    changes: Vec<RestrictionChange>,
    /// The user's first rule event: one more in the tripwire's population.
    new_user: bool,
}

/// Judges `event` against `before` (the user's row, locked); adds the card
/// of an `add_credit_card`. Writes nothing else.
fn evaluate(
    conn: &mut PgConnection,
    event: &Event,
    before: &UserRow,
    cfg: &RulesConfig,
    now: DateTime<Utc>,
) -> QueryResult<Evaluated> {
    let mut after = before.clone();
    let mut facts = before.facts();
    let (effect, card_added) = match &event.kind {
        EventKind::FlagScamMessage => {
            facts.scam_flags += 1;
            ("scam_flag_counted", false)
        }
        EventKind::AddCreditCard {
            zip_code,
            last_four_digits,
            total_spend,
        } => {
            let added = diesel::insert_into(cards::table)
                .values((
                    cards::user_id.eq(event.user_id.as_str()),
                    cards::zip_code.eq(zip_code.as_str()),
                    cards::last_four_digits.eq(last_four_digits.as_str()),
                    cards::total_spend_cents.eq(total_spend.get()),
                    cards::added_at.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute(conn)?
                == 1;
            if added {
                let (n, zips) = cards::table
                    .filter(cards::user_id.eq(event.user_id.as_str()))
                    .select((
                        diesel::dsl::count_star(),
                        count(cards::zip_code).aggregate_distinct(),
                    ))
                    .first::<(i64, i64)>(conn)?;
                facts.card_count = n;
                facts.zip_count = zips;
                facts.total_spend_cents = facts.total_spend_cents.saturating_add(total_spend.get());
                ("card_added", true)
            } else {
                ("duplicate_card", false)
            }
        }
        EventKind::Chargeback { amount } => {
            facts.chargeback_cents = facts.chargeback_cents.saturating_add(amount.get());
            ("chargeback_recorded", false)
        }
    };
    after.set_facts(facts);

    let mut changes = Vec::new();
    let (mut restricted, mut lifted) = (Vec::new(), Vec::new());
    for &(rule, may_restrict) in affected_rules(&event.kind, card_added) {
        let was = before.restricted_at(rule).is_some();
        match decide(was, holds(rule, &facts, cfg), may_restrict) {
            Some(Change::Restrict) => {
                after.set_restricted_at(rule, Some(now));
                restricted.push(rule);
                changes.push(RestrictionChange {
                    rule: rule.as_str().into(),
                    action: Change::Restrict,
                    cause: "event",
                    actor: None,
                    reason: reason(rule, &facts, cfg),
                });
            }
            Some(Change::Lift) => {
                after.set_restricted_at(rule, None);
                lifted.push(rule);
                changes.push(RestrictionChange {
                    rule: rule.as_str().into(),
                    action: Change::Lift,
                    cause: "event",
                    actor: None,
                    reason: format!("the rule no longer holds: {}", reason(rule, &facts, cfg)),
                });
            }
            None => {}
        }
    }
    let new_user = before.first_event_at.is_none();
    if new_user {
        after.first_event_at = Some(now);
    }
    after.updated_at = now;
    if !changes.is_empty() {
        after.version += 1;
    }
    let outcome = serde_json::to_value(Outcome {
        name: event.kind.name(),
        event_id: event.event_id.as_ref().map(|e| e.as_str().to_owned()),
        user_id: event.user_id.as_str().to_owned(),
        effect,
        facts,
        restricted: restricted.clone(),
        lifted,
    })
    .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    Ok(Evaluated {
        after,
        outcome,
        restricted,
        changes,
        new_user,
    })
}

/// What became of one event of a batch (see [`apply_batch`]).
pub enum BatchOutcome {
    Done(EventResult),
    /// It failed inside its savepoint and was rolled back (nothing of it is
    /// stored): apply it alone, in a transaction of its own.
    Retry,
}

/// Why a batch did not commit.
#[derive(Debug)]
pub enum BatchError {
    /// Rolled back before its commit: nothing of the batch is stored.
    RolledBack(diesel::result::Error),
    /// The commit itself failed (the connection was lost, say): whether the
    /// batch is stored is unknown.
    Commit(diesel::result::Error),
}

/// Group commit: applies `batch` in ONE transaction (one WAL flush for all),
/// each event inside a savepoint of its own so that one event's failure
/// rolls back that event only. Durable when this returns `Ok`.
///
/// Events are applied in user id order (each user's in arrival order), and
/// the users already known are locked up front, in that order, by one
/// statement: concurrent batches lock users in one order and cannot
/// deadlock on them. Every event is judged exactly as [`apply_event`] judges
/// it, seeing all earlier events (of the batch too); an event_id already
/// stored, or met earlier in the batch, answers that event's outcome (or
/// [`EventResult::Reused`]) and changes nothing. The tripwire's population
/// grows by the batch's new users at the end, one statement.
///
/// [`BatchMode::Optimistic`] takes no savepoints and stores the batch's
/// users and events with one statement each at the end; any failure rolls
/// the whole batch back (`BatchError::RolledBack`), and the caller applies it
/// again with [`BatchMode::Savepoints`]. There savepoints are not released
/// (one round trip less per event); keep batches at 64 events or fewer so
/// that PostgreSQL's per-transaction cache of subtransactions does not
/// overflow.
pub fn apply_batch(
    conn: &mut PgConnection,
    batch: &[Event],
    cfg: &RulesConfig,
    mode: BatchMode,
) -> Result<Vec<BatchOutcome>, BatchError> {
    let optimistic = mode == BatchMode::Optimistic;
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by(|&a, &b| batch[a].user_id.as_str().cmp(batch[b].user_id.as_str()));
    let mut reached_commit = false;
    // Optimistic mode: what the batch's restriction changes write, at its end.
    let mut records = ChangeRecords::default();
    let applied = conn.transaction(|c| -> QueryResult<Vec<BatchOutcome>> {
        let mut out: Vec<Option<BatchOutcome>> = batch.iter().map(|_| None).collect();
        let ids: Vec<&str> = batch
            .iter()
            .filter_map(|e| e.event_id.as_ref().map(|i| i.as_str()))
            .collect();
        let mut seen: std::collections::HashMap<String, StoredEvent> = if ids.is_empty() {
            Default::default()
        } else {
            events::table
                .filter(events::event_id.eq_any(&ids))
                .select((
                    events::event_id.assume_not_null(),
                    events::name,
                    events::properties,
                    events::outcome,
                ))
                .load::<(String, String, Value, Value)>(c)?
                .into_iter()
                .map(|(id, name, properties, outcome)| {
                    (
                        id,
                        StoredEvent {
                            name,
                            properties,
                            outcome,
                        },
                    )
                })
                .collect()
        };
        let mut user_ids: Vec<&str> = order.iter().map(|&i| batch[i].user_id.as_str()).collect();
        user_ids.dedup();
        let mut locked: std::collections::HashMap<String, UserRow> = users::table
            .filter(users::user_id.eq_any(&user_ids))
            .order(users::user_id.asc())
            .select(UserRow::as_select())
            .for_update()
            .load(c)?
            .into_iter()
            .map(|u| (u.user_id.clone(), u))
            .collect();
        let mut new_users = [0_i64; POPULATION_SHARDS as usize];
        // Optimistic mode: the events to store, and each changed user with
        // the time of its last event.
        let mut deferred: Vec<(usize, Value, DateTime<Utc>)> = Vec::new();
        let mut dirty: std::collections::BTreeMap<&str, DateTime<Utc>> = Default::default();
        for &i in &order {
            let event = &batch[i];
            let id = event.event_id.as_ref().map(|e| e.as_str());
            if let Some(prev) = id.and_then(|id| seen.get(id)) {
                out[i] = Some(BatchOutcome::Done(compare(prev.clone(), event)));
                continue;
            }
            let before = locked.get(event.user_id.as_str()).cloned();
            let now = Utc::now();
            let applied = if optimistic {
                // A failure here rolls the whole batch back.
                Ok(apply_deferred(
                    c,
                    event,
                    before,
                    cfg,
                    now,
                    Some(&mut records),
                )?)
            } else {
                diesel::sql_query("SAVEPOINT batch_event").execute(c)?;
                apply_in_savepoint(c, event, before, cfg, now)
            };
            match applied {
                Ok(e) => {
                    if optimistic {
                        deferred.push((i, e.outcome.clone(), now));
                        dirty.insert(event.user_id.as_str(), now);
                    }
                    if e.new_user {
                        new_users[population_shard(event.user_id.as_str()) as usize] += 1;
                    }
                    if let Some(id) = id {
                        let stored = StoredEvent {
                            name: event.kind.name().to_owned(),
                            properties: event.canonical_properties(),
                            outcome: e.outcome.clone(),
                        };
                        seen.insert(id.to_owned(), stored);
                    }
                    let changed = !e.changes.is_empty();
                    locked.insert(event.user_id.as_str().to_owned(), e.after);
                    out[i] = Some(BatchOutcome::Done(EventResult::Applied {
                        outcome: e.outcome,
                        restricted: e.restricted,
                        changed,
                    }));
                }
                Err(err) => {
                    diesel::sql_query("ROLLBACK TO SAVEPOINT batch_event").execute(c)?;
                    if let Some(id) = id.filter(|_| is_unique_violation(&err, EVENT_ID_UNIQUE)) {
                        // Committed meanwhile by another transaction.
                        if let Some(prev) = find_event(c, id)? {
                            out[i] = Some(BatchOutcome::Done(compare(prev.clone(), event)));
                            seen.insert(id.to_owned(), prev);
                            continue;
                        }
                    }
                    tracing::warn!(
                        user.id = %event.user_id,
                        error = %err,
                        "an event failed inside its batch; it is retried alone"
                    );
                    out[i] = Some(BatchOutcome::Retry);
                }
            }
        }
        if optimistic {
            records.write(c)?;
            save_users_and_events(c, batch, &locked, &dirty, &deferred)?;
        }
        let (shards, counts): (Vec<i16>, Vec<i64>) = new_users
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(s, n)| (s as i16, *n))
            .unzip();
        if !shards.is_empty() {
            prepared(
                "UPDATE population SET users = population.users + n.users \
                 FROM unnest($1::int2[], $2::int8[]) AS n(shard, users) \
                 WHERE population.shard = n.shard",
            )
            .bind::<diesel::sql_types::Array<diesel::sql_types::SmallInt>, _>(&shards)
            .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(&counts)
            .execute(c)?;
        }
        reached_commit = true;
        Ok(out
            .into_iter()
            .map(|o| o.unwrap_or(BatchOutcome::Retry))
            .collect())
    });
    if applied.is_ok() {
        // After the commit, not within it: PostgreSQL holds one lock for
        // all notifying transactions from their notification to the end of
        // their commit, so two writers notifying in their transactions
        // flush the WAL one after the other (measured: 4.3–4.6k events/s
        // against 5.7–6.0k without). A notification lost here (the process
        // died after the commit) is made up by the outbox relay, which
        // notifies each user of a published access event.
        if let Err(e) = crate::cache::notify_changes(conn, &records.users) {
            tracing::warn!(error = %e, users = records.users.len(),
                "the check caches' invalidations failed; the outbox relay sends them");
        }
        records.announce();
    }
    applied.map_err(|e| {
        if reached_commit {
            BatchError::Commit(e)
        } else {
            BatchError::RolledBack(e)
        }
    })
}

/// One event of a batch, inside its savepoint: `before` is the user's row
/// when the batch locked it (or as an earlier event of the batch left it);
/// `None` for a user not stored yet, whose row is created here.
fn apply_in_savepoint(
    conn: &mut PgConnection,
    event: &Event,
    before: Option<UserRow>,
    cfg: &RulesConfig,
    now: DateTime<Utc>,
) -> QueryResult<Evaluated> {
    let e = apply_deferred(conn, event, before, cfg, now, None)?;
    save_user_and_event(conn, &e.after, event, &e.outcome, now)?;
    Ok(e)
}

/// How [`apply_batch`] isolates the events of a batch from each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchMode {
    /// No savepoints; users and events stored by one statement each. One
    /// failing event rolls the whole batch back.
    Optimistic,
    /// A savepoint per event: a failing event is rolled back alone.
    Savepoints,
}

/// One event of an optimistic batch: judged and its side effects written
/// (a card, restriction log, outbox), its user's row and the event itself
/// left to [`save_users_and_events`].
fn apply_deferred(
    conn: &mut PgConnection,
    event: &Event,
    before: Option<UserRow>,
    cfg: &RulesConfig,
    now: DateTime<Utc>,
    records: Option<&mut ChangeRecords>,
) -> QueryResult<Evaluated> {
    let before = match before {
        Some(u) => u,
        None => lock_user(conn, event.user_id.as_str())?,
    };
    let e = evaluate(conn, event, &before, cfg, now)?;
    if !e.changes.is_empty() {
        match records {
            Some(r) => r.add(&before, &e.after, &e.changes, cfg, now),
            None => record_changes(conn, &before, &e.after, &e.changes, cfg, now)?,
        }
    }
    Ok(e)
}

/// The end of an optimistic batch: every changed user's final row, one
/// statement, and every event in batch order, another. A user row that is
/// gone, or an event_id committed meanwhile by another batch, fails the
/// batch (it is then applied again with savepoints).
fn save_users_and_events(
    conn: &mut PgConnection,
    batch: &[Event],
    locked: &std::collections::HashMap<String, UserRow>,
    dirty: &std::collections::BTreeMap<&str, DateTime<Utc>>,
    deferred: &[(usize, Value, DateTime<Utc>)],
) -> QueryResult<()> {
    use diesel::sql_types::{Array, BigInt, Jsonb, Nullable, Text, Timestamptz};
    if deferred.is_empty() {
        return Ok(());
    }
    let rows: Vec<(&UserRow, DateTime<Utc>)> = dirty
        .iter()
        .map(|(id, at)| locked.get(*id).map(|u| (u, *at)))
        .collect::<Option<_>>()
        .ok_or(diesel::result::Error::NotFound)?;
    let col = |f: fn(&UserRow) -> i64| rows.iter().map(|(u, _)| f(u)).collect::<Vec<i64>>();
    let at = |f: fn(&UserRow) -> Option<DateTime<Utc>>| {
        rows.iter().map(|(u, _)| f(u)).collect::<Vec<_>>()
    };
    let updated = prepared(
        "UPDATE users SET scam_flags = n.scam_flags, card_count = n.card_count, \
           zip_count = n.zip_count, total_spend_cents = n.total_spend_cents, \
           chargeback_cents = n.chargeback_cents, scam_restricted_at = n.scam_restricted_at, \
           zip_restricted_at = n.zip_restricted_at, \
           chargeback_restricted_at = n.chargeback_restricted_at, version = n.version, \
           first_event_at = n.first_event_at, updated_at = n.updated_at \
         FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], \
                     $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::int8[], \
                     $11::timestamptz[], $12::timestamptz[]) \
           AS n(user_id, scam_flags, card_count, zip_count, total_spend_cents, \
                chargeback_cents, scam_restricted_at, zip_restricted_at, \
                chargeback_restricted_at, version, first_event_at, updated_at) \
         WHERE users.user_id = n.user_id",
    )
    .bind::<Array<Text>, _>(
        rows.iter()
            .map(|(u, _)| u.user_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<BigInt>, _>(col(|u| u.scam_flags))
    .bind::<Array<BigInt>, _>(col(|u| u.card_count))
    .bind::<Array<BigInt>, _>(col(|u| u.zip_count))
    .bind::<Array<BigInt>, _>(col(|u| u.total_spend_cents))
    .bind::<Array<BigInt>, _>(col(|u| u.chargeback_cents))
    .bind::<Array<Nullable<Timestamptz>>, _>(at(|u| u.scam_restricted_at))
    .bind::<Array<Nullable<Timestamptz>>, _>(at(|u| u.zip_restricted_at))
    .bind::<Array<Nullable<Timestamptz>>, _>(at(|u| u.chargeback_restricted_at))
    .bind::<Array<BigInt>, _>(col(|u| u.version))
    .bind::<Array<Nullable<Timestamptz>>, _>(at(|u| u.first_event_at))
    .bind::<Array<Timestamptz>, _>(rows.iter().map(|(_, at)| *at).collect::<Vec<_>>())
    .execute(conn)?;
    if updated != rows.len() {
        return Err(diesel::result::Error::NotFound);
    }
    let events: Vec<&Event> = deferred.iter().map(|(i, _, _)| &batch[*i]).collect();
    prepared(
        "INSERT INTO events (event_id, user_id, name, properties, outcome, received_at) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], \
                              $6::timestamptz[])",
    )
    .bind::<Array<Nullable<Text>>, _>(
        events
            .iter()
            .map(|e| e.event_id.as_ref().map(|i| i.as_str()))
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(
        events
            .iter()
            .map(|e| e.user_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(events.iter().map(|e| e.kind.name()).collect::<Vec<_>>())
    .bind::<Array<Jsonb>, _>(
        events
            .iter()
            .map(|e| e.canonical_properties())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Jsonb>, _>(deferred.iter().map(|(_, o, _)| o).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(deferred.iter().map(|(_, _, at)| *at).collect::<Vec<_>>())
    .execute(conn)?;
    Ok(())
}

/// Saves what an event changed of its (locked) user and stores the event,
/// in one statement.
fn save_user_and_event(
    conn: &mut PgConnection,
    u: &UserRow,
    event: &Event,
    outcome: &Value,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    use diesel::sql_types::{BigInt, Jsonb, Nullable, Text, Timestamptz};
    let n = diesel::sql_query(
        "WITH saved AS (\
           UPDATE users SET scam_flags = $2, card_count = $3, zip_count = $4, \
             total_spend_cents = $5, chargeback_cents = $6, scam_restricted_at = $7, \
             zip_restricted_at = $8, chargeback_restricted_at = $9, version = $10, \
             first_event_at = $11, updated_at = $12 \
           WHERE user_id = $1 RETURNING user_id) \
         INSERT INTO events (event_id, user_id, name, properties, outcome, received_at) \
         SELECT $13, user_id, $14, $15, $16, $12 FROM saved",
    )
    .bind::<Text, _>(&u.user_id)
    .bind::<BigInt, _>(u.scam_flags)
    .bind::<BigInt, _>(u.card_count)
    .bind::<BigInt, _>(u.zip_count)
    .bind::<BigInt, _>(u.total_spend_cents)
    .bind::<BigInt, _>(u.chargeback_cents)
    .bind::<Nullable<Timestamptz>, _>(u.scam_restricted_at)
    .bind::<Nullable<Timestamptz>, _>(u.zip_restricted_at)
    .bind::<Nullable<Timestamptz>, _>(u.chargeback_restricted_at)
    .bind::<BigInt, _>(u.version)
    .bind::<Nullable<Timestamptz>, _>(u.first_event_at)
    .bind::<Timestamptz, _>(now)
    .bind::<Nullable<Text>, _>(event.event_id.as_ref().map(|e| e.as_str()))
    .bind::<Text, _>(event.kind.name())
    .bind::<Jsonb, _>(event.canonical_properties())
    .bind::<Jsonb, _>(outcome)
    .execute(conn)?;
    if n == 1 {
        Ok(())
    } else {
        Err(diesel::result::Error::NotFound)
    }
}

/// Which of `writers` event writers applies `user_id`'s events: the same
/// hash as the population's shards, so that with a number of writers that
/// divides 16 no two writers update one population row.
pub fn writer_for(user_id: &str, writers: usize) -> usize {
    population_shard(user_id) as usize % writers.max(1)
}

fn population_shard(user_id: &str) -> i16 {
    // FNV-1a: stable across builds, unlike the std hasher.
    let h = user_id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    (h % POPULATION_SHARDS) as i16
}

/// How many users have sent a rule event.
pub fn population_size(conn: &mut PgConnection) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query("SELECT COALESCE(SUM(users), 0)::BIGINT AS n FROM population")
        .get_result::<N>(conn)
        .map(|r| r.n)
}

/// Distinct users `rule` newly restricted since `since`.
fn newly_restricted(conn: &mut PgConnection, rule: Rule, since: DateTime<Utc>) -> QueryResult<i64> {
    restriction_log::table
        .filter(restriction_log::rule.eq(rule.as_str()))
        .filter(restriction_log::action.eq("restrict"))
        .filter(restriction_log::cause.eq("event"))
        .filter(restriction_log::at.gt(since))
        .select(count(restriction_log::user_id).aggregate_distinct())
        .first(conn)
}

fn rule_event(
    conn: &mut PgConnection,
    row: &RuleRow,
    action: &str,
    extra: Value,
) -> QueryResult<()> {
    let mut after = serde_json::to_value(row)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    after["action"] = json!(action);
    after["capability"] = json!(row.rule().map(Rule::capability));
    after["suspended"] = json!(suspended(row.suspended_until, Utc::now()));
    if let (Some(a), Some(e)) = (after.as_object_mut(), extra.as_object()) {
        a.extend(e.clone());
    }
    let envelope = Envelope::new(
        Op::Update,
        "rule",
        row.rule.clone(),
        row.version,
        source("rules"),
        None,
        Some(after),
    );
    enqueue(conn, topics::RESTRICTION, &envelope)
}

/// Trips `rule` when it has newly restricted more than its share of the
/// population within its window; returns the tripped rule's state.
///
/// Runs after the restricting events have committed, in its own short
/// transaction, so that restricting events do not queue on the rule's row
/// through their commits. Nothing is missed: every restriction is followed
/// by a check that starts after its commit, so the last check sees them all.
/// The guarded update trips the rule once however many checks race.
/// What one tripwire check found.
#[derive(Debug, Default)]
pub struct TripwireCount {
    /// The rule, when this check tripped it.
    pub tripped: Option<RuleRow>,
    /// The users the rule newly restricted in its window and the
    /// population, when the check counted them (the rule was not
    /// suspended and the population above its minimum).
    pub counted: Option<(i64, i64)>,
}

pub fn check_tripwire(
    conn: &mut PgConnection,
    rule: Rule,
    cfg: &RulesConfig,
) -> QueryResult<TripwireCount> {
    let t = &cfg.tripwire;
    let now = Utc::now();
    let state: RuleRow = rules::table
        .find(rule.as_str())
        .select(RuleRow::as_select())
        .first(conn)?;
    if suspended(state.suspended_until, now) {
        return Ok(TripwireCount::default());
    }
    let pop = population_size(conn)?;
    if pop <= t.min_population {
        return Ok(TripwireCount::default());
    }
    let since = window_start(now, t.window, state.counted_since());
    let newly = newly_restricted(conn, rule, since)?;
    let counted = Some((newly, pop));
    if !trips(newly, pop, t) {
        return Ok(TripwireCount {
            tripped: None,
            counted,
        });
    }
    let until = now + chrono::Duration::from_std(t.suspend).unwrap_or(chrono::TimeDelta::MAX);
    conn.transaction(|c| {
        let tripped: Option<RuleRow> = diesel::update(
            rules::table.find(rule.as_str()).filter(
                rules::suspended_until
                    .is_null()
                    .or(rules::suspended_until.le(now)),
            ),
        )
        .set((
            rules::tripped_at.eq(now),
            rules::suspended_until.eq(until),
            rules::trip_count.eq(rules::trip_count + 1),
            rules::version.eq(rules::version + 1),
        ))
        .returning(RuleRow::as_returning())
        .get_result(c)
        .optional()?;
        if let Some(row) = &tripped {
            tracing::warn!(
                rule = %rule,
                newly_restricted = newly,
                population = pop,
                suspended_until = %until,
                "tripwire tripped: the rule's restrictions are suspended"
            );
            rule_event(
                c,
                row,
                "trip",
                json!({"newly_restricted": newly, "population": pop,
                       "window_seconds": t.window.as_secs()}),
            )?;
        }
        Ok(TripwireCount { tripped, counted })
    })
}

/// Ends a rule's suspension and starts its window afresh. `None` when the
/// rule was not tripped (nothing changes).
pub fn reset_rule(
    conn: &mut PgConnection,
    rule: Rule,
    actor: &str,
) -> QueryResult<(RuleRow, bool)> {
    conn.transaction(|c| {
        let now = Utc::now();
        let state: RuleRow = rules::table
            .find(rule.as_str())
            .select(RuleRow::as_select())
            .for_update()
            .first(c)?;
        if !suspended(state.suspended_until, now) {
            return Ok((state, false));
        }
        let row: RuleRow = diesel::update(rules::table.find(rule.as_str()))
            .set((
                rules::suspended_until.eq(None::<DateTime<Utc>>),
                rules::last_reset_at.eq(now),
                rules::last_reset_by.eq(actor),
                rules::version.eq(rules::version + 1),
            ))
            .returning(RuleRow::as_returning())
            .get_result(c)?;
        tracing::warn!(rule = %rule, actor, "tripwire reset by an operator");
        rule_event(c, &row, "reset", json!({"actor": actor}))?;
        Ok((row, true))
    })
}

pub fn all_rules(conn: &mut PgConnection) -> QueryResult<Vec<RuleRow>> {
    rules::table
        .select(RuleRow::as_select())
        .order(rules::rule.asc())
        .load(conn)
}

/// Each rule's state with the users it newly restricted in its window.
pub fn rules_report(
    conn: &mut PgConnection,
    cfg: &RulesConfig,
) -> QueryResult<(Vec<(RuleRow, i64)>, i64)> {
    let now = Utc::now();
    let pop = population_size(conn)?;
    let mut out = Vec::new();
    for row in all_rules(conn)? {
        let Some(rule) = row.rule() else { continue };
        let since = window_start(now, cfg.tripwire.window, row.counted_since());
        let n = newly_restricted(conn, rule, since)?;
        out.push((row, n));
    }
    Ok((out, pop))
}

/// What the checks read: one primary-key lookup.
pub fn restrictions(
    conn: &mut PgConnection,
    user_id: &UserId,
) -> QueryResult<Option<Restrictions>> {
    users::table
        .find(user_id.as_str())
        .select((
            users::is_active,
            users::scam_restricted_at.is_not_null(),
            users::zip_restricted_at.is_not_null(),
            users::chargeback_restricted_at.is_not_null(),
        ))
        .first::<(bool, bool, bool, bool)>(conn)
        .optional()
        .map(|r| {
            r.map(
                |(is_active, scam_flags, card_zip_ratio, chargeback_ratio)| Restrictions {
                    is_active,
                    scam_flags,
                    card_zip_ratio,
                    chargeback_ratio,
                },
            )
        })
}

/// Everything an operator sees of a user.
pub struct UserReport {
    pub user: UserRow,
    pub cards: Vec<CardRow>,
    pub history: Vec<LogRow>,
}

pub fn user_report(conn: &mut PgConnection, user_id: &UserId) -> QueryResult<Option<UserReport>> {
    let Some(user) = users::table
        .find(user_id.as_str())
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let cards = cards::table
        .filter(cards::user_id.eq(user_id.as_str()))
        .order(cards::added_at.asc())
        .select(CardRow::as_select())
        .load(conn)?;
    let history = restriction_log::table
        .filter(restriction_log::user_id.eq(user_id.as_str()))
        .order(restriction_log::id.desc())
        .limit(100)
        .select(LogRow::as_select())
        .load(conn)?;
    Ok(Some(UserReport {
        user,
        cards,
        history,
    }))
}

/// An operator lifts `rule`'s restriction of a user by hand. `None`: no such
/// user; the flag says whether a restriction was lifted. The rule restricts
/// the user again only on new evidence (a later event of its kind).
pub fn lift(
    conn: &mut PgConnection,
    user_id: &UserId,
    rule: Rule,
    actor: &str,
    note: Option<&str>,
    cfg: &RulesConfig,
) -> QueryResult<Option<(UserRow, bool)>> {
    conn.transaction(|c| {
        let Some(before) = lock_existing_user(c, user_id.as_str())? else {
            return Ok(None);
        };
        if before.restricted_at(rule).is_none() {
            return Ok(Some((before, false)));
        }
        let now = Utc::now();
        let mut after = before.clone();
        after.set_restricted_at(rule, None);
        after.version += 1;
        after.updated_at = now;
        save_user(c, &after)?;
        let change = RestrictionChange {
            rule: rule.as_str().into(),
            action: Change::Lift,
            cause: "operator",
            actor: Some(actor.to_owned()),
            reason: note
                .map(str::to_owned)
                .unwrap_or_else(|| "lifted by an operator".into()),
        };
        record_changes(c, &before, &after, &[change], cfg, now)?;
        Ok(Some((after, true)))
    })
}

/// Applies an account's state from `iam.user.v1`: idempotent by version
/// (an event at or below the applied version changes nothing). Returns
/// whether an `access.restriction.v1` event was written.
pub fn apply_account(
    conn: &mut PgConnection,
    account_id: &str,
    is_active: bool,
    version: i64,
    cfg: &RulesConfig,
) -> QueryResult<bool> {
    conn.transaction(|c| {
        let before = lock_user(c, account_id)?;
        if version <= before.account_version {
            return Ok(false);
        }
        let now = Utc::now();
        let mut after = before.clone();
        after.account_version = version;
        after.is_active = is_active;
        after.updated_at = now;
        let changed = before.is_active != is_active;
        if changed {
            after.version += 1;
        }
        save_user(c, &after)?;
        if changed {
            let change = RestrictionChange {
                rule: ACCOUNT_INACTIVE.into(),
                action: if is_active {
                    Change::Lift
                } else {
                    Change::Restrict
                },
                cause: "account",
                actor: None,
                reason: if is_active {
                    "the account was reactivated".into()
                } else {
                    "the account was deactivated".into()
                },
            };
            record_changes(c, &before, &after, &[change], cfg, now)?;
        }
        Ok(changed)
    })
}

/// Records whether `account_id` is an active superuser as of the account's
/// event `version`; an older or replayed event changes nothing.
pub fn apply_superuser(
    conn: &mut PgConnection,
    account_id: &str,
    is_superuser: bool,
    version: i64,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO superusers (account_id, is_superuser, version) VALUES ($1, $2, $3) \
         ON CONFLICT (account_id) DO UPDATE \
         SET is_superuser = excluded.is_superuser, version = excluded.version \
         WHERE superusers.version < excluded.version",
    )
    .bind::<diesel::sql_types::Text, _>(account_id)
    .bind::<diesel::sql_types::Bool, _>(is_superuser)
    .bind::<diesel::sql_types::BigInt, _>(version)
    .execute(conn)?;
    Ok(())
}

/// Whether `iam.user.v1` last said `account_id` is an active superuser.
pub fn is_superuser(conn: &mut PgConnection, account_id: &str) -> QueryResult<bool> {
    Ok(superusers::table
        .find(account_id)
        .select(superusers::is_superuser)
        .first::<bool>(conn)
        .optional()?
        .unwrap_or(false))
}

/// A page of what the checks read, by user id after `after` (the check
/// cache's warm-up).
pub fn check_page(
    conn: &mut PgConnection,
    after: &str,
    limit: i64,
) -> QueryResult<Vec<(String, Restrictions)>> {
    users::table
        .filter(users::user_id.gt(after))
        .order(users::user_id.asc())
        .limit(limit)
        .select((
            users::user_id,
            users::is_active,
            users::scam_restricted_at.is_not_null(),
            users::zip_restricted_at.is_not_null(),
            users::chargeback_restricted_at.is_not_null(),
        ))
        .load::<(String, bool, bool, bool, bool)>(conn)
        .map(|rows| {
            rows.into_iter()
                .map(
                    |(u, is_active, scam_flags, card_zip_ratio, chargeback_ratio)| {
                        (
                            u,
                            Restrictions {
                                is_active,
                                scam_flags,
                                card_zip_ratio,
                                chargeback_ratio,
                            },
                        )
                    },
                )
                .collect()
        })
}

/// Deletes up to `limit` stored events received before `before` (the
/// retention of the idempotency record); returns how many. Rows another
/// pruner holds are skipped.
pub fn prune_events(
    conn: &mut PgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM events WHERE id = ANY(ARRAY(\
           SELECT id FROM events WHERE received_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(before)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .execute(conn)
}
