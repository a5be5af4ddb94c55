//! The users read model: each account as its latest account and grant
//! events left it, applied only when their versions are newer.

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*, upsert::excluded};
use serde::Serialize;
use uuid::Uuid;

use super::schema::users;

/// One account as the analytics service knows it.
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

impl User {
    /// Its account event has been applied.
    pub fn known(&self) -> bool {
        self.user_version > 0
    }

    /// Known and active: may call.
    pub fn usable(&self) -> bool {
        self.known() && self.is_active
    }

    /// Whether the user still holds `scope`, as far as the read model
    /// knows (no grant event yet: the token's word stands).
    pub fn still_holds(&self, scope: &str) -> bool {
        self.scopes
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == scope))
    }
}

pub fn user(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// The accounts an account event describes.
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
