//! Applies `iam.user.v1` to the users' active flag (a deactivated account
//! can neither message nor purchase) and to the superusers (operators).
//! Idempotent by version.

use contracts::{envelope::Change, topics::user::Account, Envelope};
use diesel::pg::PgConnection;

use crate::{domain::RulesConfig, domain::UserId, store};

/// Returns the user whose restrictions changed (an `access.restriction.v1`
/// event was written), if any.
pub fn apply(
    conn: &mut PgConnection,
    e: &Envelope,
    cfg: &RulesConfig,
) -> anyhow::Result<Option<String>> {
    let Change {
        state: account,
        deleted,
    } = match e.state::<Account>() {
        Ok(c) => c,
        Err(err) => {
            // Retrying cannot fix it, and it must not block the partition.
            tracing::error!(event_id = %e.event_id, key = %e.key, error = %platform::problem::chain(&err), "skipping a user event that is not an account");
            return Ok(None);
        }
    };
    let Ok(id) = UserId::parse(&account.id.to_string()) else {
        tracing::error!(event_id = %e.event_id, key = %e.key, "skipping a user event with an unusable id");
        return Ok(None);
    };
    store::apply_superuser(
        conn,
        id.as_str(),
        account.is_superuser && account.active_after(deleted),
        e.version,
    )?;
    let changed = store::apply_account(
        conn,
        id.as_str(),
        account.active_after(deleted),
        e.version,
        cfg,
    )?;
    Ok(changed.then(|| id.as_str().to_owned()))
}
