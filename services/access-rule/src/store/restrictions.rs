//! Restrictions and lifts of users: the restriction log, and the
//! `access.restriction.v1` events of the users' new state, written to the
//! outbox in the transaction that makes the change.

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*};
use platform::{
    db::prepared,
    events::{enqueue_many, topics, Envelope, Op, Source},
};
use serde::Serialize;
use serde_json::json;

use super::{schema::restriction_log, users::UserRow};
use crate::domain::{Change, RulesConfig};

pub(super) fn source(table: &str) -> Source {
    Source {
        service: "access-rule".into(),
        table: table.into(),
    }
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
pub(super) fn record_changes(
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
pub(super) struct ChangeRecords {
    logs: Vec<(String, RestrictionChange, DateTime<Utc>)>,
    pub(super) users: Vec<String>,
    outbox: Vec<Envelope>,
}

impl ChangeRecords {
    pub(super) fn add(
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

    pub(super) fn write(&self, conn: &mut PgConnection) -> QueryResult<()> {
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
    pub(super) fn announce(&self) {
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

/// The user's last 100 restrictions and lifts, the latest first.
pub(super) fn history(conn: &mut PgConnection, user_id: &str) -> QueryResult<Vec<LogRow>> {
    restriction_log::table
        .filter(restriction_log::user_id.eq(user_id))
        .order(restriction_log::id.desc())
        .limit(100)
        .select(LogRow::as_select())
        .load(conn)
}
