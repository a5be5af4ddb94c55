//! Applies `iam.user.v1` to the users' active flag (a deactivated account
//! can neither message nor purchase) and to the superusers (operators).
//! Idempotent by version.

use diesel::pg::PgConnection;
use platform::events::{Envelope, Op};
use serde::Deserialize;

use crate::{domain::RulesConfig, domain::UserId, store};

#[derive(Deserialize)]
struct Account {
    id: String,
    is_active: bool,
    /// A superuser is an operator (older events may lack the field).
    #[serde(default)]
    is_superuser: bool,
}

/// Returns the user whose restrictions changed (an `access.restriction.v1`
/// event was written), if any.
pub fn apply(
    conn: &mut PgConnection,
    e: &Envelope,
    cfg: &RulesConfig,
) -> anyhow::Result<Option<String>> {
    let (state, deleted) = match (&e.op, &e.after, &e.before) {
        (Op::Delete, _, Some(before)) => (before, true),
        (_, Some(after), _) => (after, false),
        _ => {
            tracing::error!(event_id = %e.event_id, key = %e.key, "skipping a user event without state");
            return Ok(None);
        }
    };
    let account: Account = match serde_json::from_value(state.clone()) {
        Ok(a) => a,
        Err(err) => {
            // Retrying cannot fix it, and it must not block the partition.
            tracing::error!(event_id = %e.event_id, key = %e.key, error = %err, "skipping a user event that is not an account");
            return Ok(None);
        }
    };
    let Ok(id) = UserId::parse(&account.id) else {
        tracing::error!(event_id = %e.event_id, key = %e.key, "skipping a user event with an unusable id");
        return Ok(None);
    };
    store::apply_superuser(
        conn,
        id.as_str(),
        account.is_superuser && account.is_active && !deleted,
        e.version,
    )?;
    let changed = store::apply_account(
        conn,
        id.as_str(),
        account.is_active && !deleted,
        e.version,
        cfg,
    )?;
    Ok(changed.then(|| id.as_str().to_owned()))
}
