//! Feeds the users read model from `iam.user.v1` (username, active) and
//! `iam.user-role.v1` (roles, scopes), through
//! [`resource_server::users::apply_event`]: each topic carries its own
//! version per user and is compared only with it, so the two topics may
//! arrive in any order, and replays from the earliest offset rebuild the
//! same table. The task service keeps no email addresses.

use contracts::Envelope;
use diesel::pg::PgConnection;
use resource_server::users::{self, Applied, Emails};
use uuid::Uuid;

/// Applies one event.
pub fn apply(conn: &mut PgConnection, topic: &str, e: &Envelope) -> anyhow::Result<()> {
    apply_changed(conn, topic, e).map(|_| ())
}

/// Applies one event; answers the user it changed, if it changed one.
pub fn apply_changed(
    conn: &mut PgConnection,
    topic: &str,
    e: &Envelope,
) -> anyhow::Result<Option<Uuid>> {
    let applied = users::apply_event(conn, Emails::Dropped, topic, e)?;
    match &applied {
        Some(Applied::Account { id, active }) => {
            tracing::debug!(user.id = %id, active, version = e.version, "account applied");
            if !active {
                tracing::info!(user.id = %id, "account deactivated: its tokens are refused from now on");
            }
        }
        Some(Applied::Grants { id, roles }) => {
            tracing::debug!(user.id = %id, roles = ?roles, version = e.version, "grants applied");
        }
        None => {}
    }
    Ok(applied.map(|a| a.id()))
}
