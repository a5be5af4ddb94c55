//! The users read model: each account as its latest account and grant
//! events left it, applied only when their versions are newer.
//!
//! `iam.user.v1` (username, email, active) and `iam.user-role.v1` (roles,
//! scopes) each carry their own version per user and are compared only
//! with it, so the two topics may arrive in any order; an event at or
//! below the stored version changes nothing, which makes replays from the
//! earliest offset rebuild the same table.
//!
//! The table is created by each service's own migrations (the columns of
//! [`users`] below; a service may add its own, such as a trigger).

use chrono::{DateTime, Utc};
use contracts::{
    envelope::Change,
    topics::{self, user::Account, user_role::Grants},
    Envelope, Op,
};
use diesel::{pg::PgConnection, prelude::*, upsert::excluded};
use serde::Serialize;
use uuid::Uuid;

diesel::table! {
    /// The users read model's table.
    users (id) {
        id -> Uuid,
        username -> Nullable<Text>,
        email -> Nullable<Text>,
        is_active -> Bool,
        roles -> Array<Text>,
        scopes -> Nullable<Array<Text>>,
        user_version -> Int8,
        role_version -> Int8,
        updated_at -> Timestamptz,
    }
}

/// The topics the read model is built from.
pub const TOPICS: [&str; 2] = [topics::USER, topics::USER_ROLE];

/// One account as the service knows it.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = users)]
pub struct User {
    pub id: Uuid,
    pub username: Option<String>,
    pub email: Option<String>,
    #[serde(rename = "active")]
    pub is_active: bool,
    pub roles: Vec<String>,
    pub scopes: Option<Vec<String>>,
    pub user_version: i64,
    pub role_version: i64,
    pub updated_at: DateTime<Utc>,
}

impl crate::auth::ReadModelUser for User {
    fn id(&self) -> Uuid {
        self.id
    }

    fn known(&self) -> bool {
        self.user_version > 0
    }

    fn usable(&self) -> bool {
        self.known() && self.is_active
    }

    fn still_holds(&self, scope: &str) -> bool {
        still_holds(self.scopes.as_deref(), scope)
    }
}

/// Whether a user whose read-model scopes are `scopes` still holds
/// `scope` (no grant event yet: the token's word stands).
pub fn still_holds(scopes: Option<&[String]>, scope: &str) -> bool {
    scopes.is_none_or(|s| s.iter().any(|x| x == scope))
}

/// The row of `id`, if any.
pub fn user(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Whether the read model keeps the accounts' email addresses (a service
/// that mails them does; one that does not need them leaves them out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emails {
    Kept,
    Dropped,
}

/// The account an account event describes.
pub struct AccountChange<'a> {
    pub id: Uuid,
    pub username: &'a str,
    pub email: &'a str,
    pub active: bool,
    pub version: i64,
}

/// Applies an account event unless its version was applied already.
/// Returns whether anything changed.
pub fn apply_user(conn: &mut PgConnection, a: &AccountChange<'_>) -> QueryResult<bool> {
    // `filter` of ON CONFLICT DO UPDATE: the WHERE that skips old versions.
    use diesel::query_dsl::methods::FilterDsl;
    let email = (!a.email.is_empty()).then_some(a.email);
    let n = diesel::insert_into(users::table)
        .values((
            users::id.eq(a.id),
            users::username.eq(a.username),
            users::email.eq(email),
            users::is_active.eq(a.active),
            users::user_version.eq(a.version),
            users::updated_at.eq(Utc::now()),
        ))
        .on_conflict(users::id)
        .do_update()
        .set((
            users::username.eq(excluded(users::username)),
            users::email.eq(excluded(users::email)),
            users::is_active.eq(excluded(users::is_active)),
            users::user_version.eq(excluded(users::user_version)),
            users::updated_at.eq(excluded(users::updated_at)),
        ))
        .filter(users::user_version.lt(excluded(users::user_version)))
        .execute(conn)?;
    Ok(n > 0)
}

/// Applies a grant event unless its version was applied already.
pub fn apply_roles(
    conn: &mut PgConnection,
    id: Uuid,
    roles: &[String],
    scopes: &[String],
    version: i64,
) -> QueryResult<bool> {
    // `filter` of ON CONFLICT DO UPDATE: the WHERE that skips old versions.
    use diesel::query_dsl::methods::FilterDsl;
    let n = diesel::insert_into(users::table)
        .values((
            users::id.eq(id),
            users::roles.eq(roles),
            users::scopes.eq(Some(scopes)),
            users::role_version.eq(version),
            users::updated_at.eq(Utc::now()),
        ))
        .on_conflict(users::id)
        .do_update()
        .set((
            users::roles.eq(excluded(users::roles)),
            users::scopes.eq(excluded(users::scopes)),
            users::role_version.eq(excluded(users::role_version)),
            users::updated_at.eq(excluded(users::updated_at)),
        ))
        .filter(users::role_version.lt(excluded(users::role_version)))
        .execute(conn)?;
    Ok(n > 0)
}

/// What an event changed in the read model (for the service's own logs
/// and caches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// An account event: the user is now `active` or not.
    Account { id: Uuid, active: bool },
    /// A grant event: the user's roles now.
    Grants { id: Uuid, roles: Vec<String> },
}

impl Applied {
    /// The user changed.
    pub fn id(&self) -> Uuid {
        match self {
            Applied::Account { id, .. } | Applied::Grants { id, .. } => *id,
        }
    }
}

/// Applies one event of [`TOPICS`] (others are ignored); answers what it
/// changed, if it changed anything (an event at or below the stored
/// version does not).
pub fn apply_event(
    conn: &mut PgConnection,
    emails: Emails,
    topic: &str,
    e: &Envelope,
) -> anyhow::Result<Option<Applied>> {
    match topic {
        topics::USER => apply_account(conn, emails, e),
        topics::USER_ROLE => apply_grants(conn, e),
        _ => Ok(None),
    }
}

fn apply_account(
    conn: &mut PgConnection,
    emails: Emails,
    e: &Envelope,
) -> anyhow::Result<Option<Applied>> {
    // A deleted account is kept as inactive: tokens naming it are refused.
    let Change { state, deleted } = e.state::<Account>()?;
    let active = state.active_after(deleted);
    let change = AccountChange {
        id: state.id,
        username: &state.username,
        email: match emails {
            Emails::Kept => &state.email,
            Emails::Dropped => "",
        },
        active,
        version: e.version,
    };
    Ok(apply_user(conn, &change)?.then_some(Applied::Account {
        id: state.id,
        active,
    }))
}

fn apply_grants(conn: &mut PgConnection, e: &Envelope) -> anyhow::Result<Option<Applied>> {
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
    let changed = apply_roles(conn, id, &roles, &scopes, e.version)?;
    Ok(changed.then_some(Applied::Grants { id, roles }))
}
