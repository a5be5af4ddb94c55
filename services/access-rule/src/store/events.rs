//! Applying one event to its user, in one transaction of its own, and the
//! stored events that make a resent `event_id` apply once.

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*};
use platform::db::is_unique_violation;
use serde::Serialize;
use serde_json::Value;

use super::{
    cards, population,
    restrictions::{record_changes, RestrictionChange},
    schema::events,
    users::{lock_user, save_user, UserRow},
};
use crate::domain::{
    affected_rules, decide, holds, reason, Change, Event, EventKind, Facts, Rule, RulesConfig,
};

pub const EVENT_ID_UNIQUE: &str = "events_event_id_key";

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
pub(super) struct StoredEvent {
    pub(super) name: String,
    pub(super) properties: Value,
    pub(super) outcome: Value,
}

pub(super) fn find_event(
    conn: &mut PgConnection,
    event_id: &str,
) -> QueryResult<Option<StoredEvent>> {
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

pub(super) fn compare(prev: StoredEvent, event: &Event) -> EventResult {
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
        population::count_new_user(conn, event.user_id.as_str())?;
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
pub(super) struct Evaluated {
    pub(super) after: UserRow,
    pub(super) outcome: Value,
    pub(super) restricted: Vec<Rule>,
    pub(super) changes: Vec<RestrictionChange>,
    /// The user's first rule event: one more in the tripwire's population.
    pub(super) new_user: bool,
}

/// Judges `event` against `before` (the user's row, locked); adds the card
/// of an `add_credit_card`. Writes nothing else.
pub(super) fn evaluate(
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
            let added = cards::add(
                conn,
                event.user_id.as_str(),
                zip_code.as_str(),
                last_four_digits.as_str(),
                total_spend.get(),
                now,
            )?;
            if added {
                let (n, zips) = cards::counts(conn, event.user_id.as_str())?;
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
