//! Applies `task.v1` to the ledger and `iam.user.v1`/`iam.user-role.v1`
//! to the users read model.
//!
//! A task event becomes at most one entry: an assignment charges the
//! task's assignment fee to the new assignee; a move into
//! [`COMPLETED`](contracts::topics::task::COMPLETED) pays the completion
//! reward to the task's assignee. Each entry's key (task, event version,
//! kind) is unique in the ledger, so a redelivered or replayed event
//! changes nothing; its business day is that of the task's `updated_at`
//! in the close's time zone, so a replay files it on the same day.

use contracts::{
    envelope::Change,
    topics::{
        self,
        accounting::Kind,
        task::{self, TaskEvent},
        user::Account,
        user_role::Grants,
    },
    Envelope, Op,
};
use diesel::pg::PgConnection;
use uuid::Uuid;

use crate::{
    close::money,
    domain::Calendar,
    store::{self, AccountChange, NewEntry},
};

/// The counter of ledger entries appended, labelled by kind (`/metrics`).
pub const ENTRIES: &str = "ledger_entries_total";
pub const ENTRIES_HELP: &str = "Ledger entries appended, by kind.";

/// Applies one event; answers whether it appended a ledger entry (the
/// outbox then has something to publish).
pub fn apply(
    conn: &mut PgConnection,
    calendar: &Calendar,
    topic: &str,
    e: &Envelope,
) -> anyhow::Result<bool> {
    match topic {
        topics::TASK => apply_task(conn, calendar, e),
        topics::USER => apply_user(conn, e).map(|_| false),
        topics::USER_ROLE => apply_grants(conn, e).map(|_| false),
        _ => Ok(false),
    }
}

/// The entry a task event makes, if any.
pub fn entry_of(calendar: &Calendar, e: &Envelope, ev: &TaskEvent) -> Option<NewEntry> {
    let t = &ev.task;
    let (account, kind, amount, description) = match &ev.change {
        task::Change::Assigned { to: Some(to), .. } => (
            *to,
            Kind::Fee,
            -t.assignment_fee_cents,
            format!(
                "assignment fee of {} for task {:?}",
                money(t.assignment_fee_cents),
                t.title
            ),
        ),
        task::Change::StatusChanged { to, .. } if to == task::COMPLETED => {
            let Some(assignee) = t.assignee_id else {
                tracing::warn!(task.id = %t.id, "a task completed without an assignee: no reward");
                return None;
            };
            (
                assignee,
                Kind::Reward,
                t.completion_reward_cents,
                format!(
                    "completion reward of {} for task {:?}",
                    money(t.completion_reward_cents),
                    t.title
                ),
            )
        }
        _ => return None,
    };
    // A free task moves no money: nothing to record.
    if amount == 0 {
        return None;
    }
    Some(NewEntry {
        account_id: account,
        kind,
        amount_cents: amount,
        task_id: Some(t.id),
        description,
        business_day: calendar.day_of(t.updated_at),
        source_key: format!("task:{}:{}:{}", t.id, e.version, store::kind_name(kind)),
    })
}

fn apply_task(conn: &mut PgConnection, calendar: &Calendar, e: &Envelope) -> anyhow::Result<bool> {
    let Change { state, deleted } = e.state::<TaskEvent>()?;
    if deleted {
        return Ok(false);
    }
    let Some(entry) = entry_of(calendar, e, &state) else {
        return Ok(false);
    };
    let appended = store::append(conn, &entry)?;
    match &appended {
        Some(x) => {
            platform::metrics::global().count(ENTRIES, ENTRIES_HELP, &x.kind, 1);
            tracing::debug!(
                account.id = %x.account_id, kind = %x.kind, amount_cents = x.amount_cents,
                task.id = %state.task.id, version = e.version, "ledger entry appended"
            )
        }
        None => tracing::debug!(
            task.id = %state.task.id, version = e.version, "task event applied before: skipped"
        ),
    }
    Ok(appended.is_some())
}

fn apply_user(conn: &mut PgConnection, e: &Envelope) -> anyhow::Result<Option<Uuid>> {
    // A deleted account is kept as inactive: tokens naming it are refused.
    let Change { state, deleted } = e.state::<Account>()?;
    let change = AccountChange {
        id: state.id,
        username: &state.username,
        email: &state.email,
        active: state.active_after(deleted),
        version: e.version,
    };
    Ok(store::apply_user(conn, &change)?.then_some(state.id))
}

fn apply_grants(conn: &mut PgConnection, e: &Envelope) -> anyhow::Result<Option<Uuid>> {
    let id: Uuid = e.key.parse()?;
    let (roles, scopes) = match (&e.op, &e.after) {
        (Op::Delete, _) | (_, None) => (Vec::new(), Vec::new()),
        (_, Some(after)) => {
            let g: Grants = serde_json::from_value(after.clone())?;
            anyhow::ensure!(
                g.user_id == id,
                "grant event {} names another user",
                e.event_id
            );
            (g.roles, g.scopes)
        }
    };
    Ok(store::apply_roles(conn, id, &roles, &scopes, e.version)?.then_some(id))
}
