//! The writes of users and memberships that the identity provider's events
//! make (WorkOS's user and membership events, the authenticator's
//! `iam.user.v1`), each with its membership events; `crate::sync` decides
//! which apply.

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*};
use platform::events::Op;
use uuid::Uuid;

use super::{
    members::{publish_membership, Membership, User},
    schema::{memberships, organizations, users},
};

/// A user's email and names as the provider (or the authenticator) gives
/// them.
pub struct Profile<'a> {
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
}

/// A membership as the provider gives it: its reference, role and status,
/// as of the provider's `at`.
pub struct ProviderMembership<'a> {
    pub reference: &'a str,
    pub role: &'a str,
    pub status: &'a str,
    pub at: DateTime<Utc>,
}

/// The user with this provider reference, their row locked until the
/// transaction ends.
pub fn user_for_update(conn: &mut PgConnection, reference: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::reference_id.eq(reference))
        .for_update()
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Marks `user` deleted as of the provider's `at` and deletes their
/// memberships, each with its event.
pub fn delete_user_from_provider(
    conn: &mut PgConnection,
    user: &User,
    at: DateTime<Utc>,
) -> QueryResult<User> {
    let now = Utc::now();
    let after: User = diesel::update(users::table.find(user.id))
        .set((
            users::deleted_at.eq(now),
            users::is_active.eq(false),
            users::provider_updated_at.eq(at),
            users::version.eq(user.version + 1),
            users::updated_at.eq(now),
        ))
        .returning(User::as_returning())
        .get_result(conn)?;
    delete_memberships_of(conn, &after)?;
    Ok(after)
}

/// Gives `user` the provider's email and names as of its `at`, and
/// republishes their memberships if the email changed.
pub fn update_user_from_provider(
    conn: &mut PgConnection,
    user: &User,
    profile: &Profile<'_>,
    at: DateTime<Utc>,
) -> QueryResult<User> {
    let after: User = diesel::update(users::table.find(user.id))
        .set((
            users::email.eq(profile.email),
            users::first_name.eq(profile.first_name),
            users::last_name.eq(profile.last_name),
            users::provider_updated_at.eq(at),
            users::version.eq(user.version + 1),
            users::updated_at.eq(Utc::now()),
        ))
        .returning(User::as_returning())
        .get_result(conn)?;
    if after.email != user.email {
        republish_memberships(conn, user, &after)?;
    }
    Ok(after)
}

/// Gives `user` the authenticator account's email, names and activity as
/// of its event `version`, and republishes their memberships if the email
/// or the activity changed.
pub fn update_user_from_account(
    conn: &mut PgConnection,
    user: &User,
    profile: &Profile<'_>,
    is_active: bool,
    version: i64,
) -> QueryResult<User> {
    let after: User = diesel::update(users::table.find(user.id))
        .set((
            users::email.eq(profile.email),
            users::first_name.eq(profile.first_name),
            users::last_name.eq(profile.last_name),
            users::is_active.eq(is_active),
            users::provider_version.eq(version),
            users::version.eq(user.version + 1),
            users::updated_at.eq(Utc::now()),
        ))
        .returning(User::as_returning())
        .get_result(conn)?;
    if after.email != user.email || after.is_active != user.is_active {
        republish_memberships(conn, user, &after)?;
    }
    Ok(after)
}

/// A deleted user the directory never saw, kept as a tombstone: their
/// creation may still arrive, late.
pub fn insert_user_tombstone(
    conn: &mut PgConnection,
    reference: &str,
    profile: &Profile<'_>,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(users::table)
        .values((
            users::id.eq(Uuid::now_v7()),
            users::email.eq(profile.email),
            users::first_name.eq(profile.first_name),
            users::last_name.eq(profile.last_name),
            users::reference_id.eq(reference),
            users::provider_login.eq(profile.email.to_lowercase()),
            users::is_active.eq(false),
            users::provider_updated_at.eq(at),
            users::deleted_at.eq(Utc::now()),
        ))
        .execute(conn)
        .map(|_| ())
}

/// A user the provider made, unknown to the directory until now.
pub fn insert_user_from_provider(
    conn: &mut PgConnection,
    reference: &str,
    profile: &Profile<'_>,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(users::table)
        .values((
            users::id.eq(Uuid::now_v7()),
            users::email.eq(profile.email),
            users::first_name.eq(profile.first_name),
            users::last_name.eq(profile.last_name),
            users::reference_id.eq(reference),
            users::provider_login.eq(profile.email.to_lowercase()),
            users::provider_updated_at.eq(at),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Publishes the current state of `user`'s memberships (their email or
/// activity changed).
fn republish_memberships(conn: &mut PgConnection, before: &User, after: &User) -> QueryResult<()> {
    let rows: Vec<(Membership, String)> = memberships::table
        .inner_join(organizations::table)
        .filter(memberships::user_id.eq(after.id))
        .filter(memberships::status.ne("deleted"))
        .select((Membership::as_select(), organizations::name))
        .load(conn)?;
    for (m, org) in rows {
        let next: Membership = diesel::update(memberships::table.find(m.id))
            .set((
                memberships::version.eq(m.version + 1),
                memberships::updated_at.eq(Utc::now()),
            ))
            .returning(Membership::as_returning())
            .get_result(conn)?;
        publish_membership(conn, Op::Update, Some((&m, before)), &next, &org, after)?;
    }
    Ok(())
}

fn delete_memberships_of(conn: &mut PgConnection, user: &User) -> QueryResult<()> {
    let rows: Vec<(Membership, String)> = memberships::table
        .inner_join(organizations::table)
        .filter(memberships::user_id.eq(user.id))
        .filter(memberships::status.ne("deleted"))
        .select((Membership::as_select(), organizations::name))
        .load(conn)?;
    for (m, org) in rows {
        let next: Membership = diesel::update(memberships::table.find(m.id))
            .set((
                memberships::status.eq("deleted"),
                memberships::version.eq(m.version + 1),
                memberships::updated_at.eq(Utc::now()),
            ))
            .returning(Membership::as_returning())
            .get_result(conn)?;
        publish_membership(conn, Op::Delete, Some((&m, user)), &next, &org, user)?;
    }
    Ok(())
}

/// The membership with this provider reference, or else `user`'s in
/// organization `org`, its row locked until the transaction ends.
pub fn membership_for_update(
    conn: &mut PgConnection,
    reference: &str,
    user: Uuid,
    org: Uuid,
) -> QueryResult<Option<Membership>> {
    memberships::table
        .filter(
            memberships::reference_id
                .eq(reference)
                .or(memberships::user_id
                    .eq(user)
                    .and(memberships::organization_id.eq(org))),
        )
        .for_update()
        .select(Membership::as_select())
        .first(conn)
        .optional()
}

/// Gives membership `m` of `user` (in `organization`, by name) the
/// provider's reference, role and status, with its event: a deletion if
/// the status is `deleted`, else an update.
pub fn update_membership_from_provider(
    conn: &mut PgConnection,
    m: &Membership,
    p: &ProviderMembership<'_>,
    user: &User,
    organization: &str,
) -> QueryResult<Membership> {
    let next: Membership = diesel::update(memberships::table.find(m.id))
        .set((
            memberships::role.eq(p.role),
            memberships::status.eq(p.status),
            memberships::reference_id.eq(p.reference),
            memberships::provider_updated_at.eq(p.at),
            memberships::version.eq(m.version + 1),
            memberships::updated_at.eq(Utc::now()),
        ))
        .returning(Membership::as_returning())
        .get_result(conn)?;
    let op = if p.status == "deleted" {
        Op::Delete
    } else {
        Op::Update
    };
    publish_membership(conn, op, Some((m, user)), &next, organization, user)?;
    Ok(next)
}

/// A membership the provider made of `user` in organization `org` (named
/// `organization`), with its event; a deleted one is kept as a tombstone,
/// without an event.
pub fn insert_membership_from_provider(
    conn: &mut PgConnection,
    user: &User,
    org: Uuid,
    organization: &str,
    p: &ProviderMembership<'_>,
) -> QueryResult<Membership> {
    let m: Membership = diesel::insert_into(memberships::table)
        .values((
            memberships::id.eq(Uuid::now_v7()),
            memberships::user_id.eq(user.id),
            memberships::organization_id.eq(org),
            memberships::role.eq(p.role),
            memberships::status.eq(p.status),
            memberships::reference_id.eq(p.reference),
            memberships::provider_updated_at.eq(p.at),
        ))
        .returning(Membership::as_returning())
        .get_result(conn)?;
    if p.status != "deleted" {
        publish_membership(conn, Op::Create, None, &m, organization, user)?;
    }
    Ok(m)
}
