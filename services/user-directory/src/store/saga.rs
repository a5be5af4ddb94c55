//! The rows of the creation saga (`crate::saga`): a creation recorded
//! before its first provider call, moved state by state (compare and set),
//! and completed by the local write of its user and membership.

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*, sql_types::Text};
use platform::events::{enqueue_many, topics, Op};
use uuid::Uuid;

use super::{
    changes, lower,
    members::{membership_event, publish_membership, user_by_reference, Member, Membership, User},
    provider_tasks::queue_removal,
    schema::{memberships, user_creations, users},
};

pub const CREATION_IN_FLIGHT: &str = "user_creations_in_flight";

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

/// True if a creation of ours ended compensated with this account.
pub fn was_compensated(conn: &mut PgConnection, reference: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        user_creations::table
            .filter(user_creations::reference_id.eq(reference))
            .filter(user_creations::state.eq("compensated")),
    ))
    .get_result(conn)
}
