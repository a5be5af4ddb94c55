//! The rules' state (tripped, suspended, reset) and the tripwire's count of
//! the users a rule newly restricted within its window.

use chrono::{DateTime, Utc};
use diesel::{dsl::count, pg::PgConnection, prelude::*};
use platform::events::{enqueue, topics, Envelope, Op};
use serde::Serialize;
use serde_json::{json, Value};

use super::{
    population::population_size,
    restrictions::source,
    schema::{restriction_log, rules},
};
use crate::domain::{suspended, trips, window_start, Rule, RulesConfig};

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

/// Trips `rule` when it has newly restricted more than its share of the
/// population within its window; returns the tripped rule's state.
///
/// Runs after the restricting events have committed, in its own short
/// transaction, so that restricting events do not queue on the rule's row
/// through their commits. Nothing is missed: every restriction is followed
/// by a check that starts after its commit, so the last check sees them all.
/// The guarded update trips the rule once however many checks race.
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
