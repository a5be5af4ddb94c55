//! Users and their memberships: their rows, what the API shows and reads
//! of them, and the membership events.

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*};
use platform::events::{enqueue, topics, Envelope, Op};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::{
    lower,
    schema::{memberships, users},
    source,
};

pub const USER_EMAIL_UNIQUE: &str = "users_email_key";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub reference_id: String,
    pub provider_login: String,
    pub is_active: bool,
    pub provider_updated_at: Option<DateTime<Utc>>,
    pub provider_version: Option<i64>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub environment_role: String,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = memberships)]
pub struct Membership {
    pub id: Uuid,
    pub user_id: Uuid,
    pub organization_id: Uuid,
    pub role: String,
    pub status: String,
    pub reference_id: Option<String>,
    pub provider_updated_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user as the API shows them, with their membership in the caller's
/// organization.
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub reference_id: String,
    pub is_active: bool,
    pub organization: String,
    /// The organization role (the membership's).
    pub role: String,
    pub environment_role: String,
    pub membership_id: Uuid,
    pub membership_status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl UserView {
    pub fn new(u: &User, m: &Membership, organization: &str) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            reference_id: u.reference_id.clone(),
            is_active: u.is_active,
            organization: organization.to_owned(),
            role: m.role.clone(),
            environment_role: u.environment_role.clone(),
            membership_id: m.id,
            membership_status: m.status.clone(),
            created_at: u.created_at,
            updated_at: u.updated_at.max(m.updated_at),
        }
    }
}

pub fn publish_membership(
    conn: &mut PgConnection,
    op: Op,
    before: Option<(&Membership, &User)>,
    after: &Membership,
    organization: &str,
    user: &User,
) -> QueryResult<()> {
    let envelope = membership_event(op, before, after, organization, user);
    enqueue(conn, topics::MEMBERSHIP, &envelope)
}

pub(super) fn membership_event(
    op: Op,
    before: Option<(&Membership, &User)>,
    after: &Membership,
    organization: &str,
    user: &User,
) -> Envelope {
    let view = |m: &Membership, u: &User| {
        json!({
            "id": m.id, "user_id": m.user_id, "organization_id": m.organization_id,
            "organization": organization, "email": u.email, "reference_id": u.reference_id,
            "first_name": u.first_name, "last_name": u.last_name,
            "role": m.role, "environment_role": u.environment_role,
            "status": m.status, "version": m.version,
        })
    };
    Envelope::new(
        op,
        "membership",
        after.id.to_string(),
        after.version,
        source("memberships"),
        before.map(|(m, u)| view(m, u)),
        if op == Op::Delete {
            None
        } else {
            Some(view(after, user))
        },
    )
}

/// A live user with this email, regardless of case.
pub fn user_by_email(conn: &mut PgConnection, email: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(lower(users::email).eq(email.to_lowercase()))
        .filter(users::deleted_at.is_null())
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn user_by_reference(conn: &mut PgConnection, reference: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::reference_id.eq(reference))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// A user with their membership in `org`; `None` for anyone else's.
pub fn member(
    conn: &mut PgConnection,
    org: Uuid,
    user: Uuid,
) -> QueryResult<Option<(User, Membership)>> {
    users::table
        .inner_join(memberships::table)
        .filter(users::id.eq(user))
        .filter(users::deleted_at.is_null())
        .filter(memberships::organization_id.eq(org))
        .filter(memberships::status.ne("deleted"))
        .select((User::as_select(), Membership::as_select()))
        .first(conn)
        .optional()
}

/// A user with their membership in one organization.
pub type Member = (User, Membership);

pub struct UserFilter {
    pub email: Option<String>,
    pub role: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// A page of `org`'s members in the order they joined (the
/// `memberships_org_order` index serves it: a page reads its own rows, not
/// every member), and how many match.
pub fn members(
    conn: &mut PgConnection,
    org: Uuid,
    f: &UserFilter,
) -> QueryResult<(Vec<(User, Membership)>, i64)> {
    let filtered = || {
        let mut q = users::table
            .inner_join(memberships::table)
            .filter(users::deleted_at.is_null())
            .filter(memberships::organization_id.eq(org))
            .filter(memberships::status.ne("deleted"))
            .into_boxed();
        if let Some(e) = &f.email {
            q = q.filter(lower(users::email).eq(e.to_lowercase()));
        }
        if let Some(r) = &f.role {
            q = q.filter(lower(memberships::role).eq(r.to_lowercase()));
        }
        q
    };
    let total = filtered().count().get_result(conn)?;
    let items = filtered()
        .order((memberships::created_at.asc(), memberships::id.asc()))
        .limit(f.limit)
        .offset(f.offset)
        .select((User::as_select(), Membership::as_select()))
        .load(conn)?;
    Ok((items, total))
}
