//! Applies `task.v1` to the tasks read model, `accounting.transaction.v1`
//! to the transactions and the reports' aggregates, and
//! `iam.user.v1`/`iam.user-role.v1` to the users read model.
//!
//! Each is idempotent: a task's title is replaced only by a higher
//! envelope version; a transaction is applied once, by its id; so a
//! redelivered or replayed event changes nothing.

use contracts::{
    envelope::Change,
    topics::{self, accounting::Transaction, task::TaskEvent},
    Envelope,
};
use diesel::pg::PgConnection;
use resource_server::users::{self, Emails};

use crate::store;

/// The counter of transactions applied, labelled by kind (`/metrics`).
pub const TRANSACTIONS: &str = "analytics_transactions_total";
pub const TRANSACTIONS_HELP: &str = "Accounting transactions applied, by kind.";

/// Applies one event.
pub fn apply(conn: &mut PgConnection, topic: &str, e: &Envelope) -> anyhow::Result<()> {
    match topic {
        topics::TASK => apply_task(conn, e),
        topics::ACCOUNTING_TRANSACTION => apply_transaction(conn, e),
        topics::USER | topics::USER_ROLE => {
            users::apply_event(conn, Emails::Kept, topic, e).map(|_| ())
        }
        _ => Ok(()),
    }
}

fn apply_task(conn: &mut PgConnection, e: &Envelope) -> anyhow::Result<()> {
    // A deleted task keeps its title: rewards paid for it still name it.
    let Change { state, .. } = e.state::<TaskEvent>()?;
    let t = &state.task;
    store::apply_task(conn, t.id, &t.title, e.version, t.updated_at)?;
    Ok(())
}

fn apply_transaction(conn: &mut PgConnection, e: &Envelope) -> anyhow::Result<()> {
    let Change { state: t, .. } = e.state::<Transaction>()?;
    if store::apply_transaction(conn, &t, e.version)? {
        platform::metrics::global().count(
            TRANSACTIONS,
            TRANSACTIONS_HELP,
            store::kind_name(t.kind),
            1,
        );
        tracing::debug!(transaction.id = %t.id, kind = store::kind_name(t.kind), "transaction applied");
    } else {
        tracing::debug!(transaction.id = %t.id, "transaction applied before: skipped");
    }
    Ok(())
}
