//! Group commit: a batch of events applied in one transaction
//! ([`apply_batch`]), judged exactly as one event alone is.

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*};
use platform::db::{is_unique_violation, prepared};
use serde_json::Value;

use super::{
    events::{compare, evaluate, find_event, Evaluated, EventResult, StoredEvent, EVENT_ID_UNIQUE},
    population,
    restrictions::{record_changes, ChangeRecords},
    schema::{events, users},
    users::{lock_user, UserRow},
};
use crate::domain::{Event, RulesConfig};

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
/// deadlock on them. Every event is judged exactly as
/// [`apply_event`](super::apply_event) judges it, seeing all earlier events
/// (of the batch too); an event_id already stored, or met earlier in the
/// batch, answers that event's outcome (or [`EventResult::Reused`]) and
/// changes nothing. The tripwire's population
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
        let mut new_users = population::NewUsers::default();
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
                        new_users.add(event.user_id.as_str());
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
                        error = %platform::problem::chain(&err),
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
        new_users.count(c)?;
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
            tracing::warn!(error = %platform::problem::chain(&e), users = records.users.len(),
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
