//! Organizations: the reservation of a name and admin email, the
//! activation with the tenant's storage, renames and deletion, each with
//! its event; the admin account's standing, tenant data and the uses of
//! the bootstrap token.

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*};
use platform::events::{enqueue, topics, Envelope, Op};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{
    lower,
    members::{publish_membership, Member, Membership, User},
    provider_tasks::queue_removal,
    schema::{memberships, organizations, tenant_data, users},
    source,
};

pub const ORG_NAME_UNIQUE: &str = "organizations_name_key";
pub const ORG_ADMIN_EMAIL_UNIQUE: &str = "organizations_admin_email_key";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = organizations)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub status: String,
    pub admin_email: String,
    pub admin_login: String,
    pub admin_reference_id: Option<String>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The admin's account at the authenticator, from `iam.user.v1`: its
    /// session epoch (tokens issued below it have ended) and whether it
    /// is active. 0 and true until an event says otherwise (and always
    /// with WorkOS).
    pub admin_session_epoch: i64,
    pub admin_is_active: bool,
    /// The account's event version those two come from.
    pub admin_provider_version: Option<i64>,
}

/// What the API and the events show of an organization.
#[derive(Debug, Clone, Serialize)]
pub struct OrganizationView {
    pub id: Uuid,
    pub organization_name: String,
    pub email: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Organization> for OrganizationView {
    fn from(o: &Organization) -> Self {
        Self {
            id: o.id,
            organization_name: o.name.clone(),
            email: o.admin_email.clone(),
            version: o.version,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

fn publish_org(
    conn: &mut PgConnection,
    op: Op,
    before: Option<&Organization>,
    after: &Organization,
) -> QueryResult<()> {
    let view = |o: &Organization| serde_json::to_value(OrganizationView::from(o)).ok();
    let envelope = Envelope::new(
        op,
        "organization",
        after.id.to_string(),
        after.version,
        source("organizations"),
        before.and_then(view),
        if op == Op::Delete { None } else { view(after) },
    );
    enqueue(conn, topics::ORGANIZATION, &envelope)
}

/// Reserves the name and admin email: the row exists, `creating`, before
/// the provider is asked for the admin account.
pub fn reserve_organization(
    conn: &mut PgConnection,
    name: &str,
    admin_email: &str,
    admin_login: &str,
) -> QueryResult<Organization> {
    let now = Utc::now();
    diesel::insert_into(organizations::table)
        .values((
            organizations::id.eq(Uuid::now_v7()),
            organizations::name.eq(name),
            organizations::status.eq("creating"),
            organizations::admin_email.eq(admin_email),
            organizations::admin_login.eq(admin_login),
            organizations::created_at.eq(now),
            organizations::updated_at.eq(now),
        ))
        .returning(Organization::as_returning())
        .get_result(conn)
}

/// The organization, its tenant storage and its event, in one transaction,
/// once the admin account exists. `None` if the reservation is gone (the
/// reconciler undid it).
pub fn activate_organization(
    conn: &mut PgConnection,
    id: Uuid,
    admin_reference_id: &str,
) -> QueryResult<Option<Organization>> {
    conn.transaction(|conn| {
        let Some(org) = diesel::update(
            organizations::table
                .find(id)
                .filter(organizations::status.eq("creating")),
        )
        .set((
            organizations::status.eq("active"),
            organizations::admin_reference_id.eq(admin_reference_id),
            organizations::updated_at.eq(Utc::now()),
        ))
        .returning(Organization::as_returning())
        .get_result(conn)
        .optional()?
        else {
            return Ok(None);
        };
        diesel::insert_into(tenant_data::table)
            .values((
                tenant_data::organization_id.eq(org.id),
                tenant_data::key.eq("_tenant"),
                tenant_data::value.eq(json!({"created_at": org.created_at})),
            ))
            .execute(conn)?;
        publish_org(conn, Op::Create, None, &org)?;
        Ok(Some(org))
    })
}

/// Drops a reservation that did not complete.
pub fn drop_reservation(conn: &mut PgConnection, id: Uuid) -> QueryResult<bool> {
    diesel::delete(
        organizations::table
            .find(id)
            .filter(organizations::status.eq("creating")),
    )
    .execute(conn)
    .map(|n| n > 0)
}

pub fn reservations_older_than(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
) -> QueryResult<Vec<Organization>> {
    organizations::table
        .filter(organizations::status.eq("creating"))
        .filter(organizations::updated_at.lt(cutoff))
        .select(Organization::as_select())
        .load(conn)
}

/// Records the standing of the admin account `reference` (as of its
/// event `version`) on the organizations it administers, unless a version
/// as new was applied. Neither the organization's version nor its events
/// change: this is the authenticator's state, not the organization's.
pub fn apply_admin_account(
    conn: &mut PgConnection,
    reference: &str,
    version: i64,
    session_epoch: i64,
    is_active: bool,
) -> QueryResult<usize> {
    diesel::update(
        organizations::table
            .filter(organizations::admin_reference_id.eq(reference))
            .filter(
                organizations::admin_provider_version
                    .is_null()
                    .or(organizations::admin_provider_version.lt(version)),
            ),
    )
    .set((
        organizations::admin_session_epoch.eq(session_epoch),
        organizations::admin_is_active.eq(is_active),
        organizations::admin_provider_version.eq(version),
    ))
    .execute(conn)
}

pub fn organization(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<Organization>> {
    organizations::table
        .find(id)
        .filter(organizations::status.eq("active"))
        .select(Organization::as_select())
        .first(conn)
        .optional()
}

pub fn organization_by_name(
    conn: &mut PgConnection,
    name: &str,
) -> QueryResult<Option<Organization>> {
    organizations::table
        .filter(lower(organizations::name).eq(name.to_lowercase()))
        .filter(organizations::status.eq("active"))
        .select(Organization::as_select())
        .first(conn)
        .optional()
}

pub fn organization_by_admin_email(
    conn: &mut PgConnection,
    email: &str,
) -> QueryResult<Option<Organization>> {
    organizations::table
        .filter(lower(organizations::admin_email).eq(email.to_lowercase()))
        .filter(organizations::status.eq("active"))
        .select(Organization::as_select())
        .first(conn)
        .optional()
}

/// Renames and/or changes the admin email of one organization, under a
/// row lock, with its event. A rename is this one row: the tenant's data
/// is keyed by the organization's id and follows it.
pub fn update_organization(
    conn: &mut PgConnection,
    id: Uuid,
    name: Option<&str>,
    admin_email: Option<&str>,
) -> QueryResult<Option<Organization>> {
    conn.transaction(|conn| {
        let Some(before) = organizations::table
            .find(id)
            .filter(organizations::status.eq("active"))
            .for_update()
            .select(Organization::as_select())
            .first(conn)
            .optional()?
        else {
            return Ok(None);
        };
        let name = name.unwrap_or(&before.name);
        let email = admin_email.unwrap_or(&before.admin_email);
        if name == before.name && email == before.admin_email {
            return Ok(Some(before));
        }
        let after: Organization = diesel::update(organizations::table.find(id))
            .set((
                organizations::name.eq(name),
                organizations::admin_email.eq(email),
                organizations::version.eq(before.version + 1),
                organizations::updated_at.eq(Utc::now()),
            ))
            .returning(Organization::as_returning())
            .get_result(conn)?;
        publish_org(conn, Op::Update, Some(&before), &after)?;
        Ok(Some(after))
    })
}

/// Removes an organization with its memberships, tenant data and jobs,
/// publishing each membership's removal and the organization's. The admin
/// account's removal at the provider is queued in the same transaction.
pub fn delete_organization(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<Organization>> {
    conn.transaction(|conn| {
        let Some(org) = organizations::table
            .find(id)
            .filter(organizations::status.eq("active"))
            .for_update()
            .select(Organization::as_select())
            .first(conn)
            .optional()?
        else {
            return Ok(None);
        };
        let members: Vec<(Membership, User)> = memberships::table
            .inner_join(users::table)
            .filter(memberships::organization_id.eq(id))
            .filter(memberships::status.ne("deleted"))
            .select((Membership::as_select(), User::as_select()))
            .load(conn)?;
        for (m, u) in &members {
            let mut gone = m.clone();
            gone.version += 1;
            gone.status = "deleted".into();
            publish_membership(conn, Op::Delete, Some((m, u)), &gone, &org.name, u)?;
        }
        diesel::delete(organizations::table.find(id)).execute(conn)?;
        if let Some(r) = &org.admin_reference_id {
            queue_removal(conn, r)?;
        }
        let mut gone = org.clone();
        gone.version += 1;
        publish_org(conn, Op::Delete, Some(&org), &gone)?;
        Ok(Some(org))
    })
}

pub fn tenant_data_of(conn: &mut PgConnection, org: Uuid) -> QueryResult<Vec<(String, Value)>> {
    tenant_data::table
        .filter(tenant_data::organization_id.eq(org))
        .order(tenant_data::key.asc())
        .select((tenant_data::key, tenant_data::value))
        .load(conn)
}

pub fn put_tenant_data(
    conn: &mut PgConnection,
    org: Uuid,
    key: &str,
    value: &Value,
) -> QueryResult<()> {
    diesel::insert_into(tenant_data::table)
        .values((
            tenant_data::organization_id.eq(org),
            tenant_data::key.eq(key),
            tenant_data::value.eq(value),
        ))
        .on_conflict((tenant_data::organization_id, tenant_data::key))
        .do_update()
        .set((
            tenant_data::value.eq(value),
            tenant_data::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Organization `org` (if active) and, if it has them, user `user` with
/// their membership there: what `GET /v1/users/{id}` needs, in one query.
pub fn organization_and_member(
    conn: &mut PgConnection,
    org: Uuid,
    user: Uuid,
) -> QueryResult<Option<(Organization, Option<Member>)>> {
    let row: Option<(Organization, Option<Membership>, Option<User>)> = organizations::table
        .left_join(
            memberships::table.on(memberships::organization_id
                .eq(organizations::id)
                .and(memberships::user_id.eq(user))
                .and(memberships::status.ne("deleted"))),
        )
        .left_join(
            users::table.on(users::id
                .eq(memberships::user_id)
                .and(users::deleted_at.is_null())),
        )
        .filter(organizations::id.eq(org))
        .filter(organizations::status.eq("active"))
        .select((
            Organization::as_select(),
            Option::<Membership>::as_select(),
            Option::<User>::as_select(),
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|(o, m, u)| (o, u.zip(m))))
}

/// Records the use of the bootstrap token whose SHA-256 is `digest` for
/// `organization`; false when it was used before.
pub fn spend_bootstrap_token(
    conn: &mut PgConnection,
    digest: &[u8],
    organization: &str,
) -> QueryResult<bool> {
    diesel::sql_query(
        "INSERT INTO bootstrap_token_uses (token_sha256, organization) VALUES ($1, $2) \
         ON CONFLICT DO NOTHING",
    )
    .bind::<diesel::sql_types::Bytea, _>(digest)
    .bind::<diesel::sql_types::Text, _>(organization)
    .execute(conn)
    .map(|n| n == 1)
}

/// Gives a bootstrap token back after the creation it was spent on failed.
pub fn unspend_bootstrap_token(conn: &mut PgConnection, digest: &[u8]) -> QueryResult<()> {
    diesel::sql_query("DELETE FROM bootstrap_token_uses WHERE token_sha256 = $1")
        .bind::<diesel::sql_types::Bytea, _>(digest)
        .execute(conn)
        .map(drop)
}
