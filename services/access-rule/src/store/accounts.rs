//! The accounts' state from `iam.user.v1`: a deactivated account's
//! restriction, and who is a superuser.

use chrono::Utc;
use diesel::{pg::PgConnection, prelude::*};

use super::{
    restrictions::{record_changes, RestrictionChange},
    schema::superusers,
    users::{lock_user, save_user},
};
use crate::domain::{Change, RulesConfig};

/// The restriction a deactivated account carries (from `iam.user.v1`).
pub const ACCOUNT_INACTIVE: &str = "account_inactive";

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
