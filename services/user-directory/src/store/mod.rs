//! The directory in PostgreSQL. Synchronous diesel functions, called
//! through `platform::db::with_conn`. Every change of an organization or a
//! membership writes its event to the outbox in the same transaction.
//!
//! Tenancy is by row: every tenant row carries its organization's id, and
//! every query a tenant can reach filters on the id taken from the
//! caller's token, never on a name from the request.

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*, sql_types::Text};
use platform::events::{enqueue, enqueue_many, topics, Envelope, Op, Source};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

pub mod admin_refresh;
pub mod changes;
pub mod org_events;

diesel::define_sql_function!(fn lower(x: Text) -> Text);

/// What became of one stored provider event (`crate::sync` applies them).
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Done(&'static str),
    /// Not now: what it refers to is not known yet (out of order).
    Later(&'static str),
}

diesel::table! {
    organizations (id) {
        id -> Uuid,
        name -> Text,
        status -> Text,
        admin_email -> Text,
        admin_login -> Text,
        admin_reference_id -> Nullable<Text>,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        admin_session_epoch -> Int8,
        admin_is_active -> Bool,
        admin_provider_version -> Nullable<Int8>,
    }
}

diesel::table! {
    tenant_data (organization_id, key) {
        organization_id -> Uuid,
        key -> Text,
        value -> Jsonb,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        first_name -> Text,
        last_name -> Text,
        reference_id -> Text,
        provider_login -> Text,
        is_active -> Bool,
        provider_updated_at -> Nullable<Timestamptz>,
        provider_version -> Nullable<Int8>,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
        environment_role -> Text,
    }
}

diesel::table! {
    memberships (id) {
        id -> Uuid,
        user_id -> Uuid,
        organization_id -> Uuid,
        role -> Text,
        status -> Text,
        reference_id -> Nullable<Text>,
        provider_updated_at -> Nullable<Timestamptz>,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    user_creations (id) {
        id -> Uuid,
        email -> Text,
        provider_login -> Text,
        organization_id -> Uuid,
        role -> Text,
        state -> Text,
        reference_id -> Nullable<Text>,
        membership_reference_id -> Nullable<Text>,
        user_id -> Nullable<Uuid>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    provider_tasks (id) {
        id -> Int8,
        kind -> Text,
        reference_id -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        done_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    provider_events (id) {
        id -> Text,
        event -> Text,
        payload -> Jsonb,
        source -> Text,
        received_at -> Timestamptz,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        applied_at -> Nullable<Timestamptz>,
        outcome -> Nullable<Text>,
    }
}

diesel::table! {
    sync_cursors (name) {
        name -> Text,
        cursor -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    import_jobs (id) {
        id -> Uuid,
        organization_id -> Uuid,
        status -> Text,
        total -> Int4,
        processed -> Int4,
        created -> Int4,
        existing -> Int4,
        failed -> Int4,
        input -> Nullable<Jsonb>,
        results -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(memberships -> organizations (organization_id));
diesel::allow_tables_to_appear_in_same_query!(users, memberships, organizations);

pub const ORG_NAME_UNIQUE: &str = "organizations_name_key";
pub const ORG_ADMIN_EMAIL_UNIQUE: &str = "organizations_admin_email_key";
pub const USER_EMAIL_UNIQUE: &str = "users_email_key";
pub const CREATION_IN_FLIGHT: &str = "user_creations_in_flight";

fn source(table: &str) -> Source {
    Source {
        service: "user-directory".into(),
        table: table.into(),
    }
}

// ---------------------------------------------------------------- organizations

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

// ---------------------------------------------------------------- users

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

fn membership_event(
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

// ---------------------------------------------------------------- the creation saga

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = user_creations)]
pub struct Creation {
    pub id: Uuid,
    pub email: String,
    pub provider_login: String,
    pub organization_id: Uuid,
    pub role: String,
    pub state: String,
    pub reference_id: Option<String>,
    pub membership_reference_id: Option<String>,
    pub user_id: Option<Uuid>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const OPEN_STATES: [&str; 3] = ["pending", "user_created", "membership_created"];

pub enum Begin {
    Started(Creation),
    Exists(User),
    InFlight,
}

/// One creation to record: the email, the provider login and the role.
pub struct CreationRequest {
    pub email: String,
    pub login: String,
    pub role: String,
}

/// Records creations before their first provider call (a single one, or
/// an import's next rows) in one
/// transaction: one answer per request, in order. The emails of one batch
/// must differ (regardless of case); a second one would answer `InFlight`.
pub fn begin_creations(
    conn: &mut PgConnection,
    org: Uuid,
    requests: &[CreationRequest],
) -> QueryResult<Vec<Begin>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    conn.transaction(|conn| {
        let lowered: Vec<String> = requests.iter().map(|r| r.email.to_lowercase()).collect();
        let mut existing: std::collections::HashMap<String, User> = users::table
            .filter(lower(users::email).eq_any(&lowered))
            .filter(users::deleted_at.is_null())
            .select((lower(users::email), User::as_select()))
            .load::<(String, User)>(conn)?
            .into_iter()
            .collect();
        // An email a change is giving to a user is taken, as by a creation.
        let changing = changes::emails_in_flight(conn, &lowered)?;
        let now = Utc::now();
        let ids: Vec<Option<Uuid>> = lowered
            .iter()
            .map(|l| (!existing.contains_key(l) && !changing.contains(l)).then(Uuid::now_v7))
            .collect();
        let rows: Vec<_> = requests
            .iter()
            .zip(&ids)
            .filter_map(|(r, id)| {
                id.map(|id| {
                    (
                        user_creations::id.eq(id),
                        user_creations::email.eq(&r.email),
                        user_creations::provider_login.eq(&r.login),
                        user_creations::organization_id.eq(org),
                        user_creations::role.eq(&r.role),
                        user_creations::state.eq("pending"),
                        user_creations::created_at.eq(now),
                        user_creations::updated_at.eq(now),
                    )
                })
            })
            .collect();
        let mut started: std::collections::HashMap<Uuid, Creation> = if rows.is_empty() {
            Default::default()
        } else {
            diesel::insert_into(user_creations::table)
                .values(&rows)
                .on_conflict_do_nothing()
                .returning(Creation::as_returning())
                .get_results::<Creation>(conn)?
                .into_iter()
                .map(|c| (c.id, c))
                .collect()
        };
        Ok(lowered
            .iter()
            .zip(&ids)
            .map(|(l, id)| match id {
                None => existing.remove(l).map_or(Begin::InFlight, Begin::Exists),
                Some(id) => started.remove(id).map_or(Begin::InFlight, Begin::Started),
            })
            .collect())
    })
}

/// Moves a creation from `from` to `to` (compare and set: false if someone
/// else, the reconciler, moved it first).
pub fn advance_creation(
    conn: &mut PgConnection,
    id: Uuid,
    from: &str,
    to: &str,
    reference: Option<&str>,
    membership_reference: Option<&str>,
) -> QueryResult<bool> {
    let n = diesel::update(
        user_creations::table
            .find(id)
            .filter(user_creations::state.eq(from)),
    )
    .set((
        user_creations::state.eq(to),
        user_creations::reference_id.eq(reference),
        user_creations::membership_reference_id.eq(membership_reference),
        user_creations::updated_at.eq(Utc::now()),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Ends a creation the provider refused for good: nothing to undo.
pub fn fail_creation(conn: &mut PgConnection, id: Uuid, error: &str) -> QueryResult<()> {
    diesel::update(
        user_creations::table
            .find(id)
            .filter(user_creations::state.eq_any(OPEN_STATES)),
    )
    .set((
        user_creations::state.eq("failed"),
        user_creations::last_error.eq(error),
        user_creations::updated_at.eq(Utc::now()),
    ))
    .execute(conn)
    .map(|_| ())
}

/// Ends an open creation as compensated, queueing the removal of the
/// provider account (if one was made) in the same transaction. False if it
/// was not open any more.
pub fn compensate_creation(
    conn: &mut PgConnection,
    id: Uuid,
    reference: Option<&str>,
    error: &str,
) -> QueryResult<bool> {
    conn.transaction(|conn| {
        let n = diesel::update(
            user_creations::table
                .find(id)
                .filter(user_creations::state.eq_any(OPEN_STATES)),
        )
        .set((
            user_creations::state.eq("compensated"),
            user_creations::reference_id.eq(reference),
            user_creations::last_error.eq(error),
            user_creations::updated_at.eq(Utc::now()),
        ))
        .execute(conn)?;
        if n == 1 {
            if let Some(r) = reference {
                queue_removal(conn, r)?;
            }
        }
        Ok(n == 1)
    })
}

pub fn open_creations_older_than(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
) -> QueryResult<Vec<Creation>> {
    user_creations::table
        .filter(user_creations::state.eq_any(OPEN_STATES))
        .filter(user_creations::updated_at.lt(cutoff))
        .select(Creation::as_select())
        .load(conn)
}

pub fn creation_open_for(conn: &mut PgConnection, reference: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        user_creations::table
            .filter(user_creations::reference_id.eq(reference))
            .filter(user_creations::state.eq_any(OPEN_STATES)),
    ))
    .get_result(conn)
}

pub struct CompletedUser {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub environment_role: String,
    pub reference_id: String,
    pub provider_login: String,
    pub provider_updated_at: Option<DateTime<Utc>>,
    /// The authenticator's version of the account as created, so that its
    /// own `iam.user.v1` event of the creation changes nothing.
    pub provider_version: Option<i64>,
}

/// What the local write of one creation did: `None` if the reconciler had
/// taken the creation over.
pub type Written = QueryResult<Option<(User, Membership)>>;

/// A creation whose provider steps are done: the local write is next.
pub struct Completion {
    /// With the provider's references filled in.
    pub creation: Creation,
    /// The state the provider steps left it in: the local write moves it
    /// from there to `completed` (compare and set).
    pub from: &'static str,
    pub user: CompletedUser,
}

/// The local writes of a batch of creations, committed together. Should
/// one of them fail (an email taken meanwhile), the batch runs again with
/// each creation in its own savepoint, so that it fails alone: one answer
/// per creation, in order. `Err` only if the batch could not be committed.
pub fn complete_creations(
    conn: &mut PgConnection,
    batch: &[Completion],
    organization_name: &str,
) -> QueryResult<Vec<Written>> {
    let together = conn.transaction(|conn| complete_together(conn, batch, organization_name));
    match together {
        Ok(done) => Ok(done.into_iter().map(Ok).collect()),
        Err(_) if batch.len() > 1 => conn.transaction(|conn| {
            Ok(batch
                .iter()
                .map(|c| conn.transaction(|conn| complete_one(conn, c, organization_name)))
                .collect())
        }),
        Err(e) => Ok(vec![Err(e)]),
    }
}

#[derive(QueryableByName)]
struct CreationId {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

/// The local writes of a batch as a handful of statements, whatever its
/// size: creations moved by compare and set, then users, memberships and
/// their events inserted many rows at a time. Any failure fails it all.
fn complete_together(
    conn: &mut PgConnection,
    batch: &[Completion],
    organization_name: &str,
) -> QueryResult<Vec<Option<Member>>> {
    use diesel::sql_types::{Array, Nullable, Uuid as SqlUuid};
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let references: Vec<&str> = batch.iter().map(|c| c.user.reference_id.as_str()).collect();
    let mut adopted: std::collections::HashMap<String, User> = users::table
        .filter(users::reference_id.eq_any(&references))
        .select(User::as_select())
        .load::<User>(conn)?
        .into_iter()
        .map(|u| (u.reference_id.clone(), u))
        .collect();
    let user_ids: Vec<Uuid> = batch
        .iter()
        .map(|c| {
            adopted
                .get(&c.user.reference_id)
                .map_or_else(Uuid::now_v7, |u| u.id)
        })
        .collect();
    let moved: std::collections::HashSet<Uuid> = diesel::sql_query(
        "UPDATE user_creations AS c \
         SET state = 'completed', reference_id = v.reference_id, \
             membership_reference_id = v.membership_reference_id, user_id = v.user_id, \
             updated_at = now() \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[]) \
              AS v (id, reference_id, membership_reference_id, user_id, from_state) \
         WHERE c.id = v.id AND c.state = v.from_state \
         RETURNING c.id",
    )
    .bind::<Array<SqlUuid>, _>(batch.iter().map(|c| c.creation.id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(&references)
    .bind::<Array<Nullable<Text>>, _>(
        batch
            .iter()
            .map(|c| c.creation.membership_reference_id.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<SqlUuid>, _>(&user_ids)
    .bind::<Array<Text>, _>(batch.iter().map(|c| c.from).collect::<Vec<_>>())
    .load::<CreationId>(conn)?
    .into_iter()
    .map(|r| r.id)
    .collect();
    // An account taken back after the directory removed its user.
    for c in batch.iter().filter(|c| moved.contains(&c.creation.id)) {
        if let Some(u) = adopted.remove(&c.user.reference_id) {
            let u = changes::revive(conn, u, c.creation.organization_id, &c.user)?;
            adopted.insert(u.reference_id.clone(), u);
        }
    }
    let now = Utc::now();
    let goes_on = |c: &&Completion| moved.contains(&c.creation.id);
    let new_users: Vec<_> = batch
        .iter()
        .zip(&user_ids)
        .filter(|(c, _)| goes_on(c) && !adopted.contains_key(&c.user.reference_id))
        .map(|(c, id)| {
            let u = &c.user;
            (
                users::id.eq(*id),
                users::email.eq(&u.email),
                users::first_name.eq(&u.first_name),
                users::last_name.eq(&u.last_name),
                users::environment_role.eq(&u.environment_role),
                users::reference_id.eq(&u.reference_id),
                users::provider_login.eq(&u.provider_login),
                users::provider_updated_at.eq(u.provider_updated_at),
                users::provider_version.eq(u.provider_version),
                users::created_at.eq(now),
                users::updated_at.eq(now),
            )
        })
        .collect();
    if !new_users.is_empty() {
        let inserted: Vec<User> = diesel::insert_into(users::table)
            .values(&new_users)
            .returning(User::as_returning())
            .get_results(conn)?;
        adopted.extend(inserted.into_iter().map(|u| (u.reference_id.clone(), u)));
    }
    let new_memberships: Vec<_> = batch
        .iter()
        .zip(&user_ids)
        .filter(|(c, _)| goes_on(c))
        .map(|(c, user_id)| {
            (
                memberships::id.eq(Uuid::now_v7()),
                memberships::user_id.eq(*user_id),
                memberships::organization_id.eq(c.creation.organization_id),
                memberships::role.eq(&c.creation.role),
                memberships::status.eq("active"),
                memberships::reference_id.eq(&c.creation.membership_reference_id),
                memberships::created_at.eq(now),
                memberships::updated_at.eq(now),
            )
        })
        .collect();
    let mut by_user: std::collections::HashMap<Uuid, Membership> = if new_memberships.is_empty() {
        Default::default()
    } else {
        diesel::insert_into(memberships::table)
            .values(&new_memberships)
            .returning(Membership::as_returning())
            .get_results::<Membership>(conn)?
            .into_iter()
            .map(|m| (m.user_id, m))
            .collect()
    };
    let mut events = Vec::new();
    let mut out = Vec::with_capacity(batch.len());
    for (c, user_id) in batch.iter().zip(&user_ids) {
        if !moved.contains(&c.creation.id) {
            out.push(None);
            continue;
        }
        let (Some(user), Some(m)) = (adopted.get(&c.user.reference_id), by_user.remove(user_id))
        else {
            return Err(diesel::result::Error::NotFound);
        };
        events.push(membership_event(
            Op::Create,
            None,
            &m,
            organization_name,
            user,
        ));
        out.push(Some((user.clone(), m)));
    }
    enqueue_many(conn, topics::MEMBERSHIP, &events)?;
    Ok(out)
}

/// The local write, last step of a creation: the user (adopting a row a
/// provider event may have made for this reference), the membership, its
/// event, and the creation marked done. `None` if the creation was taken
/// over by the reconciler meanwhile.
fn complete_one(
    conn: &mut PgConnection,
    c: &Completion,
    organization_name: &str,
) -> QueryResult<Option<(User, Membership)>> {
    let new = &c.user;
    let adopted = user_by_reference(conn, &new.reference_id)?;
    let user_id = adopted.as_ref().map_or_else(Uuid::now_v7, |u| u.id);
    let now = Utc::now();
    let n = diesel::update(
        user_creations::table
            .find(c.creation.id)
            .filter(user_creations::state.eq(c.from)),
    )
    .set((
        user_creations::state.eq("completed"),
        user_creations::reference_id.eq(&new.reference_id),
        user_creations::membership_reference_id.eq(&c.creation.membership_reference_id),
        user_creations::user_id.eq(user_id),
        user_creations::updated_at.eq(now),
    ))
    .execute(conn)?;
    if n == 0 {
        return Ok(None);
    }
    let user: User = match adopted {
        Some(u) => changes::revive(conn, u, c.creation.organization_id, new)?,
        None => diesel::insert_into(users::table)
            .values((
                users::id.eq(user_id),
                users::email.eq(&new.email),
                users::first_name.eq(&new.first_name),
                users::last_name.eq(&new.last_name),
                users::environment_role.eq(&new.environment_role),
                users::reference_id.eq(&new.reference_id),
                users::provider_login.eq(&new.provider_login),
                users::provider_updated_at.eq(new.provider_updated_at),
                users::provider_version.eq(new.provider_version),
                users::created_at.eq(now),
                users::updated_at.eq(now),
            ))
            .returning(User::as_returning())
            .get_result(conn)?,
    };
    let membership: Membership = diesel::insert_into(memberships::table)
        .values((
            memberships::id.eq(Uuid::now_v7()),
            memberships::user_id.eq(user.id),
            memberships::organization_id.eq(c.creation.organization_id),
            memberships::role.eq(&c.creation.role),
            memberships::status.eq("active"),
            memberships::reference_id.eq(&c.creation.membership_reference_id),
            memberships::created_at.eq(now),
            memberships::updated_at.eq(now),
        ))
        .returning(Membership::as_returning())
        .get_result(conn)?;
    publish_membership(
        conn,
        Op::Create,
        None,
        &membership,
        organization_name,
        &user,
    )?;
    Ok(Some((user, membership)))
}

// ---------------------------------------------------------------- provider tasks

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = provider_tasks)]
pub struct ProviderTask {
    pub id: i64,
    pub kind: String,
    pub reference_id: String,
    pub attempts: i32,
}

pub fn queue_removal(conn: &mut PgConnection, reference: &str) -> QueryResult<()> {
    diesel::insert_into(provider_tasks::table)
        .values((
            provider_tasks::kind.eq("remove_user"),
            provider_tasks::reference_id.eq(reference),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn due_tasks(conn: &mut PgConnection, limit: i64) -> QueryResult<Vec<ProviderTask>> {
    provider_tasks::table
        .filter(provider_tasks::done_at.is_null())
        .filter(provider_tasks::next_attempt_at.le(Utc::now()))
        .order(provider_tasks::id.asc())
        .limit(limit)
        .select(ProviderTask::as_select())
        .load(conn)
}

pub fn task_done(conn: &mut PgConnection, id: i64) -> QueryResult<()> {
    diesel::update(provider_tasks::table.find(id))
        .set(provider_tasks::done_at.eq(Utc::now()))
        .execute(conn)
        .map(|_| ())
}

/// Retries later, backing off up to ten minutes.
pub fn task_failed(conn: &mut PgConnection, t: &ProviderTask, error: &str) -> QueryResult<()> {
    let secs = 2_i64
        .saturating_pow(t.attempts.clamp(0, 10) as u32)
        .min(600);
    diesel::update(provider_tasks::table.find(t.id))
        .set((
            provider_tasks::attempts.eq(t.attempts + 1),
            provider_tasks::last_error.eq(error),
            provider_tasks::next_attempt_at.eq(Utc::now() + chrono::Duration::seconds(secs)),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn pending_task_count(conn: &mut PgConnection) -> QueryResult<i64> {
    provider_tasks::table
        .filter(provider_tasks::done_at.is_null())
        .count()
        .get_result(conn)
}

// ---------------------------------------------------------------- provider events

/// Stores an event once (by its id). True if it was new.
pub fn store_event(
    conn: &mut PgConnection,
    id: &str,
    event: &str,
    payload: &Value,
    from: &str,
) -> QueryResult<bool> {
    diesel::insert_into(provider_events::table)
        .values((
            provider_events::id.eq(id),
            provider_events::event.eq(event),
            provider_events::payload.eq(payload),
            provider_events::source.eq(from),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .map(|n| n == 1)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = provider_events)]
pub struct StoredEvent {
    pub id: String,
    pub event: String,
    pub payload: Value,
    pub attempts: i32,
}

pub fn due_events(conn: &mut PgConnection, limit: i64) -> QueryResult<Vec<StoredEvent>> {
    provider_events::table
        .filter(provider_events::applied_at.is_null())
        .filter(provider_events::next_attempt_at.le(Utc::now()))
        .order((
            provider_events::received_at.asc(),
            provider_events::id.asc(),
        ))
        .limit(limit)
        .select(StoredEvent::as_select())
        .load(conn)
}

pub fn event_applied(conn: &mut PgConnection, id: &str, outcome: &str) -> QueryResult<()> {
    diesel::update(provider_events::table.find(id))
        .set((
            provider_events::applied_at.eq(Utc::now()),
            provider_events::outcome.eq(outcome),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Tries the event again later (its user or organization is not known
/// yet: events arrive out of order).
pub fn event_deferred(conn: &mut PgConnection, e: &StoredEvent, why: &str) -> QueryResult<()> {
    let ms = (250_i64 * 2_i64.saturating_pow(e.attempts.clamp(0, 12) as u32)).min(300_000);
    diesel::update(provider_events::table.find(&e.id))
        .set((
            provider_events::attempts.eq(e.attempts + 1),
            provider_events::outcome.eq(why),
            provider_events::next_attempt_at.eq(Utc::now() + chrono::Duration::milliseconds(ms)),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn cursor(conn: &mut PgConnection, name: &str) -> QueryResult<Option<String>> {
    sync_cursors::table
        .find(name)
        .select(sync_cursors::cursor)
        .first(conn)
        .optional()
}

pub fn set_cursor(conn: &mut PgConnection, name: &str, value: &str) -> QueryResult<()> {
    diesel::insert_into(sync_cursors::table)
        .values((sync_cursors::name.eq(name), sync_cursors::cursor.eq(value)))
        .on_conflict(sync_cursors::name)
        .do_update()
        .set((
            sync_cursors::cursor.eq(value),
            sync_cursors::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .map(|_| ())
}

// ---------------------------------------------------------------- imports

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = import_jobs)]
pub struct ImportJob {
    pub id: Uuid,
    #[serde(skip)]
    pub organization_id: Uuid,
    pub status: String,
    pub total: i32,
    pub processed: i32,
    pub created: i32,
    #[serde(rename = "exists")]
    pub existing: i32,
    pub failed: i32,
    #[serde(skip)]
    pub input: Option<Value>,
    #[serde(rename = "rows")]
    pub results: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub fn create_job(
    conn: &mut PgConnection,
    org: Uuid,
    total: i32,
    input: &Value,
) -> QueryResult<ImportJob> {
    diesel::insert_into(import_jobs::table)
        .values((
            import_jobs::id.eq(Uuid::now_v7()),
            import_jobs::organization_id.eq(org),
            import_jobs::status.eq("running"),
            import_jobs::total.eq(total),
            import_jobs::input.eq(input),
        ))
        .returning(ImportJob::as_returning())
        .get_result(conn)
}

pub struct Progress {
    pub processed: i32,
    pub created: i32,
    pub existing: i32,
    pub failed: i32,
    pub results: Value,
    pub finished: bool,
}

pub fn job_progress(conn: &mut PgConnection, id: Uuid, p: &Progress) -> QueryResult<()> {
    let now = Utc::now();
    diesel::update(import_jobs::table.find(id))
        .set((
            import_jobs::processed.eq(p.processed),
            import_jobs::created.eq(p.created),
            import_jobs::existing.eq(p.existing),
            import_jobs::failed.eq(p.failed),
            import_jobs::results.eq(&p.results),
            import_jobs::updated_at.eq(now),
        ))
        .execute(conn)?;
    if p.finished {
        diesel::update(import_jobs::table.find(id))
            .set((
                import_jobs::status.eq("finished"),
                import_jobs::input.eq(None::<Value>),
                import_jobs::finished_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn job(conn: &mut PgConnection, org: Uuid, id: Uuid) -> QueryResult<Option<ImportJob>> {
    import_jobs::table
        .find(id)
        .filter(import_jobs::organization_id.eq(org))
        .select(ImportJob::as_select())
        .first(conn)
        .optional()
}

pub fn running_jobs(conn: &mut PgConnection) -> QueryResult<Vec<ImportJob>> {
    import_jobs::table
        .filter(import_jobs::status.eq("running"))
        .select(ImportJob::as_select())
        .load(conn)
}

/// True if a creation of ours ended compensated with this account.
pub fn was_compensated(conn: &mut PgConnection, reference: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        user_creations::table
            .filter(user_creations::reference_id.eq(reference))
            .filter(user_creations::state.eq("compensated")),
    ))
    .get_result(conn)
}

pub fn cancel_removals(conn: &mut PgConnection, reference: &str) -> QueryResult<()> {
    diesel::update(
        provider_tasks::table
            .filter(provider_tasks::reference_id.eq(reference))
            .filter(provider_tasks::done_at.is_null()),
    )
    .set((
        provider_tasks::done_at.eq(Utc::now()),
        provider_tasks::last_error.eq("cancelled: the account was taken back"),
    ))
    .execute(conn)
    .map(|_| ())
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

// ---------------------------------------------------------------- retention

/// What the directory prunes besides the outbox ([`platform::retention`]):
/// finished work past its window. Open creations, compensated ones, tasks
/// still to run, provider events not applied yet and bootstrap token uses
/// (which keep a token from creating a second organization) are never
/// deleted.
pub fn retention_steps(
    windows: &crate::config::RetentionWindows,
) -> Vec<platform::retention::Step> {
    use platform::retention::Step;
    let mut steps = Vec::new();
    if let Some(w) = windows.provider_events {
        steps.push(Step::older_than(
            "provider_events",
            w,
            "DELETE FROM provider_events WHERE id = ANY(ARRAY(\
               SELECT id FROM provider_events WHERE applied_at IS NOT NULL AND received_at < $1 \
                ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
        ));
    }
    if let Some(w) = windows.import_jobs {
        steps.push(Step::older_than(
            "import_jobs",
            w,
            "DELETE FROM import_jobs WHERE id = ANY(ARRAY(\
               SELECT id FROM import_jobs WHERE status = 'finished' AND finished_at < $1 \
                LIMIT $2 FOR UPDATE SKIP LOCKED))",
        ));
    }
    if let Some(w) = windows.saga {
        steps.push(Step::older_than(
            "user_creations",
            w,
            "DELETE FROM user_creations WHERE id = ANY(ARRAY(\
               SELECT id FROM user_creations \
                WHERE state IN ('completed', 'failed') AND updated_at < $1 \
                ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
        ));
        steps.push(changes::retention_step(w));
        steps.push(Step::older_than(
            "provider_tasks",
            w,
            "DELETE FROM provider_tasks WHERE id = ANY(ARRAY(\
               SELECT id FROM provider_tasks WHERE done_at < $1 \
                LIMIT $2 FOR UPDATE SKIP LOCKED))",
        ));
    }
    steps.extend(admin_refresh::retention_steps());
    steps
}
