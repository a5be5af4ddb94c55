//! Applies `iam.user.v1` to the users read model. Idempotent by version: an
//! event at or below the stored version changes nothing. A deactivation
//! revokes everything the user was issued; a superuser holds `admin`. The
//! account's session epoch and ended sessions (absent from older events:
//! 0 and none) decide which session tokens still work (see `auth`).

use contracts::{envelope::Change, topics::user::Account, Envelope};
use diesel::{
    pg::PgConnection,
    sql_query,
    sql_types::{Array, Bool, Int8, Text, Uuid as SqlUuid},
    Connection, RunQueryDsl,
};

use crate::{grants, rbac};

pub const ADMIN_ROLE: &str = "admin";

pub fn apply(conn: &mut PgConnection, _topic: &str, e: &Envelope) -> anyhow::Result<()> {
    let Change {
        state: user,
        deleted,
    } = e.state::<Account>()?;
    let active = user.active_after(deleted);
    conn.transaction(|c| -> anyhow::Result<()> {
        let applied = sql_query(
            "INSERT INTO users (id, username, is_active, is_superuser, version, session_epoch, ended_sessions) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username, is_active = EXCLUDED.is_active, \
             is_superuser = EXCLUDED.is_superuser, version = EXCLUDED.version, \
             session_epoch = EXCLUDED.session_epoch, ended_sessions = EXCLUDED.ended_sessions \
             WHERE users.version < EXCLUDED.version",
        )
        .bind::<SqlUuid, _>(user.id)
        .bind::<Text, _>(&user.username)
        .bind::<Bool, _>(active)
        .bind::<Bool, _>(user.is_superuser)
        .bind::<Int8, _>(e.version)
        .bind::<Int8, _>(user.session_epoch)
        .bind::<Array<Text>, _>(&user.ended_sessions)
        .execute(c)?;
        if applied == 0 {
            return Ok(()); // seen already
        }
        if !active {
            grants::revoke_user(c, user.id)?;
            tracing::info!(user.id = %user.id, "user deactivated: grants revoked");
        }
        if user.is_superuser && active {
            rbac::grant_role(c, user.id, ADMIN_ROLE)?;
        }
        Ok(())
    })
}
