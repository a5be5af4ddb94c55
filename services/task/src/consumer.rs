//! Feeds the users read model from `iam.user.v1` (username, active) and
//! `iam.user-role.v1` (roles, scopes). Each topic carries its own version
//! per user and is compared only with it, so the two topics may arrive in
//! any order; an event at or below the stored version changes nothing,
//! which makes replays from the earliest offset rebuild the same table.

use contracts::{
    envelope::Change,
    topics::{self, user::Account, user_role::Grants},
    Envelope, Op,
};
use diesel::pg::PgConnection;
use uuid::Uuid;

use crate::store;

pub fn apply(conn: &mut PgConnection, topic: &str, e: &Envelope) -> anyhow::Result<()> {
    apply_changed(conn, topic, e).map(|_| ())
}

/// Applies one event; answers the user it changed, if it changed one.
pub fn apply_changed(
    conn: &mut PgConnection,
    topic: &str,
    e: &Envelope,
) -> anyhow::Result<Option<Uuid>> {
    match topic {
        topics::USER => apply_user(conn, e),
        topics::USER_ROLE => apply_grants(conn, e),
        _ => Ok(None),
    }
}

/// The user it changed, if it changed one.
fn apply_user(conn: &mut PgConnection, e: &Envelope) -> anyhow::Result<Option<Uuid>> {
    // A deleted account is kept as inactive: tokens naming it are refused.
    let Change { state, deleted } = e.state::<Account>()?;
    let active = state.active_after(deleted);
    if store::apply_user(conn, state.id, &state.username, active, e.version)? {
        tracing::debug!(user.id = %state.id, active, version = e.version, "account applied");
        if !active {
            tracing::info!(user.id = %state.id, "account deactivated: its tokens are refused from now on");
        }
        return Ok(Some(state.id));
    }
    Ok(None)
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
    if store::apply_roles(conn, id, &roles, &scopes, e.version)? {
        tracing::debug!(user.id = %id, roles = ?roles, version = e.version, "grants applied");
        return Ok(Some(id));
    }
    Ok(None)
}
