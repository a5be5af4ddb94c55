//! The users read model as the task service reads it: each account as its
//! latest account and grant events left it (applied by
//! [`resource_server::users`], which owns the writes), without the email
//! column the task service leaves empty.

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*};
use serde::Serialize;
use uuid::Uuid;

use super::schema::users;

/// One account as the task service knows it.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = users)]
pub struct User {
    pub id: Uuid,
    pub username: Option<String>,
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

    /// Known and active: may call, may be assigned tasks.
    pub fn usable(&self) -> bool {
        self.known() && self.is_active
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the user still holds `scope`, as far as the read model
    /// knows (no grant event yet: the token's word stands).
    pub fn still_holds(&self, scope: &str) -> bool {
        resource_server::users::still_holds(self.scopes.as_deref(), scope)
    }
}

impl resource_server::auth::ReadModelUser for User {
    fn id(&self) -> Uuid {
        self.id
    }

    fn known(&self) -> bool {
        User::known(self)
    }

    fn usable(&self) -> bool {
        User::usable(self)
    }

    fn still_holds(&self, scope: &str) -> bool {
        User::still_holds(self, scope)
    }
}

pub fn user(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn user_by_username(conn: &mut PgConnection, username: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::username.eq(username))
        .order(users::user_version.desc())
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Empties the read model (before a replay from the earliest offset).
pub fn truncate_users(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("TRUNCATE users").execute(conn)?;
    Ok(())
}
