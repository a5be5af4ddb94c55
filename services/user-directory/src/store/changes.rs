//! Changes of a member made through the API (`PATCH /v1/users/{id}`, `PUT
//! /v1/users/{id}/role`, `DELETE /v1/users/{id}`), recorded before the
//! provider is called (see `crate::changes` for the saga). Every move is a
//! compare and set on the change's state and `attempt`: the reconciler
//! raises `attempt` when it takes a change over, after which the request
//! that began it can no longer move it.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*};
use platform::events::Op;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{
    lower, publish_membership,
    schema::{memberships, organizations, user_creations, users},
    CompletedUser, Membership, User, OPEN_STATES,
};

diesel::table! {
    user_changes (id) {
        id -> Uuid,
        organization_id -> Uuid,
        user_id -> Uuid,
        membership_id -> Uuid,
        kind -> Text,
        state -> Text,
        attempt -> Int4,
        reference_id -> Text,
        membership_reference_id -> Nullable<Text>,
        email -> Nullable<Text>,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        environment_role -> Nullable<Text>,
        role -> Nullable<Text>,
        previous -> Jsonb,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

/// States in which a change is still to be completed or compensated.
pub const OPEN: [&str; 3] = ["pending", "provider_done", "compensating"];
pub const ONE_OPEN_PER_USER: &str = "user_changes_one_open";
pub const EMAIL_IN_FLIGHT: &str = "user_changes_email_in_flight";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = user_changes)]
pub struct Change {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub user_id: Uuid,
    pub membership_id: Uuid,
    /// `update`, `role` or `remove`.
    pub kind: String,
    pub state: String,
    pub attempt: i32,
    pub reference_id: String,
    pub membership_reference_id: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub environment_role: Option<String>,
    pub role: Option<String>,
    pub previous: Value,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Change {
    pub fn previous(&self) -> Previous {
        serde_json::from_value(self.previous.clone()).unwrap_or_default()
    }
}

/// What the provider held before the change: what a compensation sets
/// back.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Previous {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub environment_role: String,
    pub role: String,
}

/// A change asked for: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ChangeRequest {
    pub kind: &'static str,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub environment_role: Option<String>,
    pub role: Option<String>,
}

pub enum BeginChange {
    Started(Change),
    /// Not a member of that organization (or not at all).
    NotFound,
    /// The email belongs to another user, or a creation or change of
    /// another user is giving it.
    EmailTaken,
    /// Another change of this user is under way.
    Busy,
    /// Nothing to change: the member as they are.
    Unchanged(User, Membership),
    /// The user is also a member of another organization (WorkOS keeps
    /// users across organizations): their account is not this
    /// organization's alone to change or remove.
    Shared,
}

/// Records a change of member `user` of `org` before any provider call.
pub fn begin_change(
    conn: &mut PgConnection,
    org: Uuid,
    user: Uuid,
    req: &ChangeRequest,
) -> QueryResult<BeginChange> {
    let outcome = conn.transaction(|conn| {
        let Some((u, m)) = users::table
            .inner_join(memberships::table)
            .filter(users::id.eq(user))
            .filter(users::deleted_at.is_null())
            .filter(memberships::organization_id.eq(org))
            .filter(memberships::status.ne("deleted"))
            .for_update()
            .select((User::as_select(), Membership::as_select()))
            .first::<(User, Membership)>(conn)
            .optional()?
        else {
            return Ok(BeginChange::NotFound);
        };
        // A role is this membership's; the account (its email, names,
        // environment role, its existence) is shared by every membership.
        if req.kind != "role" {
            let elsewhere: i64 = memberships::table
                .filter(memberships::user_id.eq(u.id))
                .filter(memberships::organization_id.ne(org))
                .filter(memberships::status.ne("deleted"))
                .count()
                .get_result(conn)?;
            if elsewhere > 0 {
                return Ok(BeginChange::Shared);
            }
        }
        let differs = |new: &Option<String>, old: &str| new.clone().filter(|n| n != old);
        let email = differs(&req.email, &u.email);
        if let Some(e) = &email {
            if email_taken(conn, e, u.id)? {
                return Ok(BeginChange::EmailTaken);
            }
        }
        let first_name = differs(&req.first_name, &u.first_name);
        let last_name = differs(&req.last_name, &u.last_name);
        let environment_role = differs(&req.environment_role, &u.environment_role);
        let role = differs(&req.role, &m.role);
        let nothing = match req.kind {
            "remove" => false,
            "role" => role.is_none(),
            _ => {
                email.is_none()
                    && first_name.is_none()
                    && last_name.is_none()
                    && environment_role.is_none()
            }
        };
        if nothing {
            return Ok(BeginChange::Unchanged(u, m));
        }
        let previous = Previous {
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            environment_role: u.environment_role.clone(),
            role: m.role.clone(),
        };
        let now = Utc::now();
        let change = diesel::insert_into(user_changes::table)
            .values((
                user_changes::id.eq(Uuid::now_v7()),
                user_changes::organization_id.eq(org),
                user_changes::user_id.eq(u.id),
                user_changes::membership_id.eq(m.id),
                user_changes::kind.eq(req.kind),
                user_changes::state.eq("pending"),
                user_changes::reference_id.eq(&u.reference_id),
                user_changes::membership_reference_id.eq(&m.reference_id),
                user_changes::email.eq(&email),
                user_changes::first_name.eq(&first_name),
                user_changes::last_name.eq(&last_name),
                user_changes::environment_role.eq(&environment_role),
                user_changes::role.eq(&role),
                user_changes::previous.eq(serde_json::to_value(&previous).unwrap_or_default()),
                user_changes::created_at.eq(now),
                user_changes::updated_at.eq(now),
            ))
            .returning(Change::as_returning())
            .get_result(conn)?;
        Ok(BeginChange::Started(change))
    });
    match outcome {
        Err(e) if platform::db::is_unique_violation(&e, ONE_OPEN_PER_USER) => Ok(BeginChange::Busy),
        Err(e) if platform::db::is_unique_violation(&e, EMAIL_IN_FLIGHT) => {
            Ok(BeginChange::EmailTaken)
        }
        other => other,
    }
}

/// Whether `email` (regardless of case) belongs to a live user other than
/// `except`, or is being given by a creation or another user's change.
fn email_taken(conn: &mut PgConnection, email: &str, except: Uuid) -> QueryResult<bool> {
    let lowered = email.to_lowercase();
    let user: bool = diesel::select(diesel::dsl::exists(
        users::table
            .filter(lower(users::email).eq(&lowered))
            .filter(users::deleted_at.is_null())
            .filter(users::id.ne(except)),
    ))
    .get_result(conn)?;
    let creating: bool = diesel::select(diesel::dsl::exists(
        user_creations::table
            .filter(lower(user_creations::email).eq(&lowered))
            .filter(user_creations::state.eq_any(OPEN_STATES)),
    ))
    .get_result(conn)?;
    let changing: bool = diesel::select(diesel::dsl::exists(
        user_changes::table
            .filter(lower(user_changes::email.assume_not_null()).eq(&lowered))
            .filter(user_changes::state.eq_any(OPEN))
            .filter(user_changes::user_id.ne(except)),
    ))
    .get_result(conn)?;
    Ok(user || creating || changing)
}

/// The emails among `lowered` (lowercase) that open changes are giving
/// to users: a creation must not take them.
pub fn emails_in_flight(
    conn: &mut PgConnection,
    lowered: &[String],
) -> QueryResult<HashSet<String>> {
    if lowered.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(user_changes::table
        .filter(user_changes::email.is_not_null())
        .filter(lower(user_changes::email.assume_not_null()).eq_any(lowered))
        .filter(user_changes::state.eq_any(OPEN))
        .select(lower(user_changes::email.assume_not_null()))
        .load::<String>(conn)?
        .into_iter()
        .collect())
}

/// Moves a change from `from` to `to` if it is still in `from` at
/// `attempt` (compare and set).
pub fn advance_change(
    conn: &mut PgConnection,
    id: Uuid,
    attempt: i32,
    from: &str,
    to: &str,
    error: Option<&str>,
) -> QueryResult<bool> {
    let n = diesel::update(
        user_changes::table
            .find(id)
            .filter(user_changes::state.eq(from))
            .filter(user_changes::attempt.eq(attempt)),
    )
    .set((
        user_changes::state.eq(to),
        user_changes::last_error.eq(error),
        user_changes::updated_at.eq(Utc::now()),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Takes an open change over (the reconciler, once its lease has passed):
/// raises `attempt` and renews the lease. False if it moved meanwhile.
pub fn claim_change(conn: &mut PgConnection, c: &Change) -> QueryResult<Option<Change>> {
    diesel::update(
        user_changes::table
            .find(c.id)
            .filter(user_changes::state.eq(&c.state))
            .filter(user_changes::attempt.eq(c.attempt)),
    )
    .set((
        user_changes::attempt.eq(c.attempt + 1),
        user_changes::updated_at.eq(Utc::now()),
    ))
    .returning(Change::as_returning())
    .get_result(conn)
    .optional()
}

pub fn open_changes_older_than(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
) -> QueryResult<Vec<Change>> {
    user_changes::table
        .filter(user_changes::state.eq_any(OPEN))
        .filter(user_changes::updated_at.lt(cutoff))
        .order(user_changes::updated_at.asc())
        .limit(100)
        .select(Change::as_select())
        .load(conn)
}

/// The local write, last step of a change, with its events: `None` if the
/// change is no longer `provider_done` at `attempt` (taken over).
pub fn complete_change(
    conn: &mut PgConnection,
    c: &Change,
) -> QueryResult<Option<(User, Membership)>> {
    conn.transaction(|conn| {
        if !advance_change(conn, c.id, c.attempt, "provider_done", "completed", None)? {
            return Ok(None);
        }
        let before: User = users::table
            .find(c.user_id)
            .for_update()
            .select(User::as_select())
            .first(conn)?;
        let now = Utc::now();
        let after: User = match c.kind.as_str() {
            "remove" => diesel::update(users::table.find(c.user_id))
                .set((
                    users::deleted_at.eq(now),
                    users::is_active.eq(false),
                    users::version.eq(before.version + 1),
                    users::updated_at.eq(now),
                ))
                .returning(User::as_returning())
                .get_result(conn)?,
            "update" => diesel::update(users::table.find(c.user_id))
                .set((
                    users::email.eq(c.email.as_deref().unwrap_or(&before.email)),
                    users::first_name.eq(c.first_name.as_deref().unwrap_or(&before.first_name)),
                    users::last_name.eq(c.last_name.as_deref().unwrap_or(&before.last_name)),
                    users::environment_role.eq(c
                        .environment_role
                        .as_deref()
                        .unwrap_or(&before.environment_role)),
                    users::version.eq(before.version + 1),
                    users::updated_at.eq(now),
                ))
                .returning(User::as_returning())
                .get_result(conn)?,
            _ => before.clone(),
        };
        // A removal ends every membership of the user (the account is gone
        // at the provider); a change of the user is published on each of
        // their memberships; a role, on this one.
        let mut touched: Vec<(Membership, String)> = memberships::table
            .inner_join(organizations::table)
            .filter(memberships::user_id.eq(c.user_id))
            .filter(memberships::status.ne("deleted"))
            .for_update()
            .select((Membership::as_select(), organizations::name))
            .load(conn)?;
        if c.kind == "role" {
            touched.retain(|(m, _)| m.id == c.membership_id);
        }
        let mut this = None;
        for (m, org_name) in touched {
            let status = if c.kind == "remove" {
                "deleted"
            } else {
                m.status.as_str()
            };
            let role = match (&c.kind[..], &c.role) {
                ("role", Some(r)) => r.as_str(),
                _ => m.role.as_str(),
            };
            let next: Membership = diesel::update(memberships::table.find(m.id))
                .set((
                    memberships::status.eq(status),
                    memberships::role.eq(role),
                    memberships::version.eq(m.version + 1),
                    memberships::updated_at.eq(now),
                ))
                .returning(Membership::as_returning())
                .get_result(conn)?;
            let op = if c.kind == "remove" {
                Op::Delete
            } else {
                Op::Update
            };
            publish_membership(conn, op, Some((&m, &before)), &next, &org_name, &after)?;
            if next.id == c.membership_id {
                this = Some(next);
            }
        }
        match this {
            Some(m) => Ok(Some((after, m))),
            None => Err(diesel::result::Error::NotFound),
        }
    })
}

/// Whether the directory removed the user of this account (a tombstone
/// of ours): a later creation of the same email takes the account back.
pub fn was_removed(conn: &mut PgConnection, reference: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        users::table
            .filter(users::reference_id.eq(reference))
            .filter(users::deleted_at.is_not_null()),
    ))
    .get_result(conn)
}

/// Brings a removed user back for a creation that took its account back:
/// the row lives again with the creation's fields, and the old
/// membership's tombstone in `org` gives way to the new membership. A
/// live user is returned as it is.
pub fn revive(
    conn: &mut PgConnection,
    user: User,
    org: Uuid,
    fields: &CompletedUser,
) -> QueryResult<User> {
    if user.deleted_at.is_none() {
        return Ok(user);
    }
    diesel::delete(
        memberships::table
            .filter(memberships::user_id.eq(user.id))
            .filter(memberships::organization_id.eq(org))
            .filter(memberships::status.eq("deleted")),
    )
    .execute(conn)?;
    diesel::update(users::table.find(user.id))
        .set((
            users::deleted_at.eq(None::<DateTime<Utc>>),
            users::is_active.eq(true),
            users::email.eq(&fields.email),
            users::first_name.eq(&fields.first_name),
            users::last_name.eq(&fields.last_name),
            users::environment_role.eq(&fields.environment_role),
            users::version.eq(user.version + 1),
            users::updated_at.eq(Utc::now()),
        ))
        .returning(User::as_returning())
        .get_result(conn)
}

/// Finished changes past the saga's retention window.
pub fn retention_step(window: std::time::Duration) -> platform::retention::Step {
    platform::retention::Step::older_than(
        "user_changes",
        window,
        "DELETE FROM user_changes WHERE id = ANY(ARRAY(\
           SELECT id FROM user_changes \
            WHERE state IN ('completed', 'failed', 'compensated') AND updated_at < $1 \
            ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
    )
}
