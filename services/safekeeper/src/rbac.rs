//! The RBAC catalogue and user-role grants. Synchronous diesel; every
//! change to what a user holds writes an `iam.user-role.v1` event (key =
//! user id, `after` = the user's full role and scope sets) in the same
//! transaction.

use std::collections::BTreeSet;

use diesel::{
    pg::PgConnection,
    prelude::*,
    sql_query,
    sql_types::{Text, Uuid as SqlUuid},
};
use platform::events::{enqueue, topics, Envelope, Op, Source};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::schema::*;

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct UserId {
    #[diesel(sql_type = SqlUuid)]
    user_id: Uuid,
}

/// Every scope the user's roles carry (the join of the task-management
/// design's model: user, roles, permissions, scopes).
pub fn user_scopes(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<BTreeSet<String>> {
    let rows: Vec<Name> = sql_query(
        "SELECT DISTINCT s.name FROM user_role ur \
         JOIN role_permission rp ON rp.role_id = ur.role_id \
         JOIN permission_scope ps ON ps.permission_id = rp.permission_id \
         JOIN scope s ON s.id = ps.scope_id \
         WHERE ur.user_id = $1",
    )
    .bind::<SqlUuid, _>(user_id)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| r.name).collect())
}

pub fn user_roles(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<Vec<String>> {
    user_role::table
        .inner_join(role::table)
        .filter(user_role::user_id.eq(user_id))
        .select(role::name)
        .order(role::name.asc())
        .load(conn)
}

pub fn client_scopes(conn: &mut PgConnection, client_id: &str) -> QueryResult<BTreeSet<String>> {
    Ok(client_scope::table
        .inner_join(scope::table)
        .filter(client_scope::client_id.eq(client_id))
        .select(scope::name)
        .load::<String>(conn)?
        .into_iter()
        .collect())
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = users)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub is_active: bool,
    pub is_superuser: bool,
    pub version: i64,
    /// Session tokens whose `sep` is below this have ended.
    #[serde(skip)]
    pub session_epoch: i64,
    /// `jti`s of single sessions ended by a logout.
    #[serde(skip)]
    pub ended_sessions: Vec<String>,
}

pub fn user(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Writes the user's current role and scope sets as a new version.
pub fn publish_user_roles(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<()> {
    let version: i64 = diesel::insert_into(user_role_version::table)
        .values((
            user_role_version::user_id.eq(user_id),
            user_role_version::version.eq(1),
        ))
        .on_conflict(user_role_version::user_id)
        .do_update()
        .set(user_role_version::version.eq(user_role_version::version + 1))
        .returning(user_role_version::version)
        .get_result(conn)?;
    let roles = user_roles(conn, user_id)?;
    let scopes = user_scopes(conn, user_id)?;
    let envelope = Envelope::new(
        if version == 1 { Op::Create } else { Op::Update },
        "user_role",
        user_id.to_string(),
        version,
        Source {
            service: "safekeeper".into(),
            table: "user_role".into(),
        },
        None,
        Some(json!({"user_id": user_id, "roles": roles, "scopes": scopes})),
    );
    enqueue(conn, topics::USER_ROLE, &envelope)
}

fn publish_all(
    conn: &mut PgConnection,
    users: impl IntoIterator<Item = Uuid>,
) -> QueryResult<usize> {
    let mut n = 0;
    for u in users.into_iter().collect::<BTreeSet<_>>() {
        publish_user_roles(conn, u)?;
        n += 1;
    }
    Ok(n)
}

fn holders_of_role(conn: &mut PgConnection, role_id: i32) -> QueryResult<Vec<Uuid>> {
    user_role::table
        .filter(user_role::role_id.eq(role_id))
        .select(user_role::user_id)
        .load(conn)
}

fn holders_of_permission(conn: &mut PgConnection, permission_id: i32) -> QueryResult<Vec<Uuid>> {
    let rows: Vec<UserId> = sql_query(
        "SELECT DISTINCT ur.user_id FROM user_role ur \
         JOIN role_permission rp ON rp.role_id = ur.role_id WHERE rp.permission_id = $1",
    )
    .bind::<diesel::sql_types::Int4, _>(permission_id)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| r.user_id).collect())
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("unknown {kind} {name:?}")]
    Unknown { kind: &'static str, name: String },
    #[error("{kind} {name:?} exists already")]
    Exists { kind: &'static str, name: String },
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

fn unknown(kind: &'static str, name: &str) -> CatalogueError {
    CatalogueError::Unknown {
        kind,
        name: name.to_owned(),
    }
}

fn exists_or<'a>(
    kind: &'static str,
    name: &'a str,
) -> impl FnOnce(diesel::result::Error) -> CatalogueError + 'a {
    move |e| match e {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ) => CatalogueError::Exists {
            kind,
            name: name.to_owned(),
        },
        other => CatalogueError::Db(other),
    }
}

fn role_id(conn: &mut PgConnection, name: &str) -> Result<i32, CatalogueError> {
    role::table
        .filter(role::name.eq(name))
        .select(role::id)
        .first(conn)
        .optional()?
        .ok_or_else(|| unknown("role", name))
}

fn scope_ids(conn: &mut PgConnection, names: &[String]) -> Result<Vec<i32>, CatalogueError> {
    let found: Vec<(i32, String)> = scope::table
        .filter(scope::name.eq_any(names))
        .select((scope::id, scope::name))
        .load(conn)?;
    if let Some(missing) = names.iter().find(|n| !found.iter().any(|(_, f)| f == *n)) {
        return Err(unknown("scope", missing));
    }
    Ok(found.into_iter().map(|(id, _)| id).collect())
}

fn permission_ids(conn: &mut PgConnection, names: &[String]) -> Result<Vec<i32>, CatalogueError> {
    let found: Vec<(i32, String)> = permission::table
        .filter(permission::name.eq_any(names))
        .select((permission::id, permission::name))
        .load(conn)?;
    if let Some(missing) = names.iter().find(|n| !found.iter().any(|(_, f)| f == *n)) {
        return Err(unknown("permission", missing));
    }
    Ok(found.into_iter().map(|(id, _)| id).collect())
}

// ----- grants -------------------------------------------------------------

/// Replaces the user's roles with `roles`; publishes when the set changed.
pub fn set_user_roles(
    conn: &mut PgConnection,
    user_id: Uuid,
    roles: &[String],
) -> Result<Vec<String>, CatalogueError> {
    conn.transaction(|conn| {
        let mut ids = Vec::with_capacity(roles.len());
        for r in roles {
            ids.push(role_id(conn, r)?);
        }
        let before = user_roles(conn, user_id)?;
        diesel::delete(user_role::table.filter(user_role::user_id.eq(user_id))).execute(conn)?;
        let rows: Vec<_> = ids
            .iter()
            .map(|id| (user_role::user_id.eq(user_id), user_role::role_id.eq(*id)))
            .collect();
        diesel::insert_into(user_role::table)
            .values(&rows)
            .on_conflict_do_nothing()
            .execute(conn)?;
        let after = user_roles(conn, user_id)?;
        if before != after {
            publish_user_roles(conn, user_id)?;
        }
        Ok(after)
    })
}

pub fn grant_role(
    conn: &mut PgConnection,
    user_id: Uuid,
    role: &str,
) -> Result<bool, CatalogueError> {
    conn.transaction(|conn| {
        let id = role_id(conn, role)?;
        let n = diesel::insert_into(user_role::table)
            .values((user_role::user_id.eq(user_id), user_role::role_id.eq(id)))
            .on_conflict_do_nothing()
            .execute(conn)?;
        if n > 0 {
            publish_user_roles(conn, user_id)?;
        }
        Ok(n > 0)
    })
}

pub fn revoke_role(
    conn: &mut PgConnection,
    user_id: Uuid,
    role: &str,
) -> Result<bool, CatalogueError> {
    conn.transaction(|conn| {
        let id = role_id(conn, role)?;
        let n = diesel::delete(
            user_role::table.filter(
                user_role::user_id
                    .eq(user_id)
                    .and(user_role::role_id.eq(id)),
            ),
        )
        .execute(conn)?;
        if n > 0 {
            publish_user_roles(conn, user_id)?;
        }
        Ok(n > 0)
    })
}

// ----- roles --------------------------------------------------------------

#[derive(Debug, Serialize)]
pub struct RoleView {
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
    pub scopes: BTreeSet<String>,
}

pub fn list_roles(conn: &mut PgConnection) -> QueryResult<Vec<RoleView>> {
    let roles: Vec<(i32, String, String)> = role::table
        .select((role::id, role::name, role::description))
        .order(role::name.asc())
        .load(conn)?;
    let links: Vec<(i32, String, Option<String>)> = role_permission::table
        .inner_join(permission::table.left_join(permission_scope::table.left_join(scope::table)))
        .select((
            role_permission::role_id,
            permission::name,
            scope::name.nullable(),
        ))
        .load(conn)?;
    Ok(roles
        .into_iter()
        .map(|(id, name, description)| {
            let mine = links.iter().filter(|(r, _, _)| *r == id);
            let permissions: BTreeSet<String> = mine.clone().map(|(_, p, _)| p.clone()).collect();
            RoleView {
                name,
                description,
                permissions: permissions.into_iter().collect(),
                scopes: mine.filter_map(|(_, _, s)| s.clone()).collect(),
            }
        })
        .collect())
}

pub fn create_role(
    conn: &mut PgConnection,
    name: &str,
    description: &str,
    permissions: &[String],
) -> Result<(), CatalogueError> {
    conn.transaction(|conn| {
        let perm_ids = permission_ids(conn, permissions)?;
        let id: i32 = diesel::insert_into(role::table)
            .values((role::name.eq(name), role::description.eq(description)))
            .returning(role::id)
            .get_result(conn)
            .map_err(exists_or("role", name))?;
        let rows: Vec<_> = perm_ids
            .iter()
            .map(|p| {
                (
                    role_permission::role_id.eq(id),
                    role_permission::permission_id.eq(*p),
                )
            })
            .collect();
        diesel::insert_into(role_permission::table)
            .values(&rows)
            .execute(conn)?;
        Ok(())
    })
}

/// Replaces a role's permissions; every holder gets a new event.
pub fn set_role_permissions(
    conn: &mut PgConnection,
    name: &str,
    permissions: &[String],
) -> Result<usize, CatalogueError> {
    conn.transaction(|conn| {
        let id = role_id(conn, name)?;
        let perm_ids = permission_ids(conn, permissions)?;
        diesel::delete(role_permission::table.filter(role_permission::role_id.eq(id)))
            .execute(conn)?;
        let rows: Vec<_> = perm_ids
            .iter()
            .map(|p| {
                (
                    role_permission::role_id.eq(id),
                    role_permission::permission_id.eq(*p),
                )
            })
            .collect();
        diesel::insert_into(role_permission::table)
            .values(&rows)
            .execute(conn)?;
        let holders = holders_of_role(conn, id)?;
        Ok(publish_all(conn, holders)?)
    })
}

pub fn delete_role(conn: &mut PgConnection, name: &str) -> Result<usize, CatalogueError> {
    conn.transaction(|conn| {
        let id = role_id(conn, name)?;
        let holders = holders_of_role(conn, id)?;
        diesel::delete(role::table.find(id)).execute(conn)?;
        Ok(publish_all(conn, holders)?)
    })
}

// ----- permissions and scopes --------------------------------------------

#[derive(Debug, Serialize)]
pub struct PermissionView {
    pub name: String,
    pub object: String,
    pub action: String,
    pub scopes: Vec<String>,
}

pub fn list_permissions(conn: &mut PgConnection) -> QueryResult<Vec<PermissionView>> {
    let rows: Vec<(String, String, String, Option<String>)> = permission::table
        .inner_join(permission_object::table)
        .inner_join(permission_action::table)
        .left_join(permission_scope::table.left_join(scope::table))
        .select((
            permission::name,
            permission_object::name,
            permission_action::name,
            scope::name.nullable(),
        ))
        .order(permission::name.asc())
        .load(conn)?;
    let mut out: Vec<PermissionView> = Vec::new();
    for (name, object, action, scope) in rows {
        if out.last().is_none_or(|p| p.name != name) {
            out.push(PermissionView {
                name,
                object,
                action,
                scopes: vec![],
            });
        }
        if let Some(s) = scope {
            out.last_mut().expect("pushed").scopes.push(s);
        }
    }
    Ok(out)
}

fn object_or_create(conn: &mut PgConnection, name: &str) -> QueryResult<i32> {
    diesel::insert_into(permission_object::table)
        .values(permission_object::name.eq(name))
        .on_conflict(permission_object::name)
        .do_update()
        .set(permission_object::name.eq(name))
        .returning(permission_object::id)
        .get_result(conn)
}

fn action_or_create(conn: &mut PgConnection, name: &str) -> QueryResult<i32> {
    diesel::insert_into(permission_action::table)
        .values(permission_action::name.eq(name))
        .on_conflict(permission_action::name)
        .do_update()
        .set(permission_action::name.eq(name))
        .returning(permission_action::id)
        .get_result(conn)
}

pub fn create_permission(
    conn: &mut PgConnection,
    name: &str,
    object: &str,
    action: &str,
    scopes: &[String],
) -> Result<(), CatalogueError> {
    conn.transaction(|conn| {
        let scope_ids = scope_ids(conn, scopes)?;
        let object_id = object_or_create(conn, object)?;
        let action_id = action_or_create(conn, action)?;
        let id: i32 = diesel::insert_into(permission::table)
            .values((
                permission::name.eq(name),
                permission::object_id.eq(object_id),
                permission::action_id.eq(action_id),
            ))
            .returning(permission::id)
            .get_result(conn)
            .map_err(exists_or("permission", name))?;
        let rows: Vec<_> = scope_ids
            .iter()
            .map(|s| {
                (
                    permission_scope::permission_id.eq(id),
                    permission_scope::scope_id.eq(*s),
                )
            })
            .collect();
        diesel::insert_into(permission_scope::table)
            .values(&rows)
            .execute(conn)?;
        Ok(())
    })
}

pub fn delete_permission(conn: &mut PgConnection, name: &str) -> Result<usize, CatalogueError> {
    conn.transaction(|conn| {
        let id: i32 = permission::table
            .filter(permission::name.eq(name))
            .select(permission::id)
            .first(conn)
            .optional()?
            .ok_or_else(|| unknown("permission", name))?;
        let holders = holders_of_permission(conn, id)?;
        diesel::delete(permission::table.find(id)).execute(conn)?;
        Ok(publish_all(conn, holders)?)
    })
}

#[derive(Debug, Serialize, Queryable)]
pub struct ScopeView {
    pub name: String,
    pub description: String,
}

pub fn list_scopes(conn: &mut PgConnection) -> QueryResult<Vec<ScopeView>> {
    scope::table
        .select((scope::name, scope::description))
        .order(scope::name.asc())
        .load(conn)
}

pub fn create_scope(
    conn: &mut PgConnection,
    name: &str,
    description: &str,
) -> Result<(), CatalogueError> {
    diesel::insert_into(scope::table)
        .values((scope::name.eq(name), scope::description.eq(description)))
        .execute(conn)
        .map_err(exists_or("scope", name))?;
    Ok(())
}

pub fn delete_scope(conn: &mut PgConnection, name: &str) -> Result<usize, CatalogueError> {
    conn.transaction(|conn| {
        let id = scope_ids(conn, &[name.to_owned()])?[0];
        let rows: Vec<UserId> = sql_query(
            "SELECT DISTINCT ur.user_id FROM user_role ur \
             JOIN role_permission rp ON rp.role_id = ur.role_id \
             JOIN permission_scope ps ON ps.permission_id = rp.permission_id WHERE ps.scope_id = $1",
        )
        .bind::<diesel::sql_types::Int4, _>(id)
        .load(conn)?;
        diesel::delete(scope::table.find(id)).execute(conn)?;
        Ok(publish_all(conn, rows.into_iter().map(|r| r.user_id))?)
    })
}
