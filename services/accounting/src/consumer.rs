//! Applies `task.v1` to the ledger and `iam.user.v1`/`iam.user-role.v1`
//! to the users read model.
//!
//! A task event becomes at most one entry: an assignment charges the
//! task's assignment fee to the new assignee; a move into
//! [`COMPLETED`](contracts::topics::task::COMPLETED) pays the completion
//! reward to the task's assignee; a move out of it reverses that reward
//! (a `correction` of the opposite amount, to the account it was paid to,
//! naming the reward), so that a task completed, reopened and completed
//! again is rewarded once in effect. Each entry's key (task, event
//! version, kind) is unique in the ledger, and a reward is reversed at
//! most once, so a redelivered or replayed event changes nothing; its
//! business day is that of the task's `updated_at` in the close's time
//! zone, so a replay files it on the same day.

use contracts::{
    envelope::Change,
    topics::{
        self,
        accounting::Kind,
        task::{self, TaskEvent},
    },
    Envelope,
};
use diesel::pg::PgConnection;
use platform::events::Delivered;
use resource_server::users::{self, Emails};

use crate::{
    close::money,
    domain::Calendar,
    store::{self, NewEntry},
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
        topics::TASK => {
            let appended = apply_task(conn, calendar, e)?;
            if let Some(kind) = &appended {
                platform::metrics::global().count(ENTRIES, ENTRIES_HELP, kind, 1);
            }
            Ok(appended.is_some())
        }
        topics::USER | topics::USER_ROLE => {
            users::apply_event(conn, Emails::Kept, topic, e).map(|_| false)
        }
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
        reverses: None,
    })
}

/// The correction a move out of [`COMPLETED`](task::COMPLETED) makes: the
/// reward of the task's latest completion reversed, unless there was none
/// (a free task, no assignee) or it was reversed already.
pub fn reversal_of(
    conn: &mut PgConnection,
    calendar: &Calendar,
    e: &Envelope,
    ev: &TaskEvent,
) -> anyhow::Result<Option<NewEntry>> {
    let t = &ev.task;
    if !leaves_completed(ev) {
        return Ok(None);
    }
    let task::Change::StatusChanged { from, to, .. } = &ev.change else {
        return Ok(None);
    };
    let Some(reward) = store::unreversed_reward(conn, t.id)? else {
        return Ok(None);
    };
    Ok(Some(NewEntry {
        account_id: reward.account_id,
        kind: Kind::Correction,
        amount_cents: -reward.amount_cents,
        task_id: Some(t.id),
        description: format!(
            "completion reward of {} for task {:?} reversed: it moved from {from} to {to}",
            money(reward.amount_cents),
            t.title
        ),
        business_day: calendar.day_of(t.updated_at),
        source_key: format!(
            "task:{}:{}:{}",
            t.id,
            e.version,
            store::kind_name(Kind::Correction)
        ),
        reverses: Some(reward.id),
    }))
}

/// Whether the event moves its task out of [`COMPLETED`](task::COMPLETED)
/// (its reward, if any, is then reversed).
fn leaves_completed(ev: &TaskEvent) -> bool {
    matches!(&ev.change, task::Change::StatusChanged { from, to, .. }
        if from == task::COMPLETED && to != task::COMPLETED)
}

/// Applies a run of events in order, as [`apply`] would one by one, with
/// the fees and rewards of consecutive task events appended together
/// ([`store::append_many`]): a consumer catching up on a backlog appends
/// hundreds of entries in a few statements. A reversal looks up the reward
/// it reverses, which may be among the entries waiting: those are appended
/// first. Answers the kinds of the entries appended, for the counter once
/// the run has committed (see [`count_entries`]).
pub fn apply_run(
    conn: &mut PgConnection,
    calendar: &Calendar,
    run: &[Delivered],
) -> anyhow::Result<Vec<String>> {
    let mut waiting: Vec<(NewEntry, usize)> = Vec::new();
    let mut appended = Vec::new();
    for (i, d) in run.iter().enumerate() {
        if d.topic != topics::TASK {
            // The users read model: no entries.
            d.in_scope(|| apply(conn, calendar, &d.topic, &d.envelope))?;
            continue;
        }
        let Change { state, deleted } = d.envelope.state::<TaskEvent>()?;
        if deleted {
            continue;
        }
        if let Some(entry) = d.in_scope(|| entry_of(calendar, &d.envelope, &state)) {
            waiting.push((entry, i));
        } else if leaves_completed(&state) {
            appended.extend(append_waiting(conn, run, &mut waiting)?);
            appended.extend(d.in_scope(|| apply_task(conn, calendar, &d.envelope))?);
        }
    }
    appended.extend(append_waiting(conn, run, &mut waiting)?);
    Ok(appended)
}

/// Counts entries appended by a run that has committed (`ENTRIES`, by
/// kind): a run that rolled back counts nothing.
pub fn count_entries(kinds: &[String]) {
    let metrics = platform::metrics::global();
    for kind in kinds {
        metrics.count(ENTRIES, ENTRIES_HELP, kind, 1);
    }
}

/// Appends the entries `waiting` (each with its event's index in `run`);
/// answers the kinds appended.
fn append_waiting(
    conn: &mut PgConnection,
    run: &[Delivered],
    waiting: &mut Vec<(NewEntry, usize)>,
) -> anyhow::Result<Vec<String>> {
    if waiting.is_empty() {
        return Ok(Vec::new());
    }
    let (entries, events): (Vec<NewEntry>, Vec<usize>) = waiting.drain(..).unzip();
    let traces: Vec<_> = events.iter().map(|&i| Some(&run[i].trace)).collect();
    let appended = store::append_many(conn, &entries, &traces)?;
    tracing::debug!(
        entries = entries.len(),
        appended = appended.len(),
        "ledger entries appended together"
    );
    Ok(appended.into_iter().map(|x| x.kind).collect())
}

/// Applies one task event; answers the kind of the entry it appended.
fn apply_task(
    conn: &mut PgConnection,
    calendar: &Calendar,
    e: &Envelope,
) -> anyhow::Result<Option<String>> {
    let Change { state, deleted } = e.state::<TaskEvent>()?;
    if deleted {
        return Ok(None);
    }
    let entry = match entry_of(calendar, e, &state) {
        Some(entry) => Some(entry),
        None => reversal_of(conn, calendar, e, &state)?,
    };
    let Some(entry) = entry else {
        return Ok(None);
    };
    let appended = store::append(conn, &entry)?;
    match &appended {
        Some(x) => {
            tracing::debug!(
                account.id = %x.account_id, kind = %x.kind, amount_cents = x.amount_cents,
                task.id = %state.task.id, version = e.version, "ledger entry appended"
            )
        }
        None => tracing::debug!(
            task.id = %state.task.id, version = e.version, "task event applied before: skipped"
        ),
    }
    Ok(appended.map(|x| x.kind))
}
