//! Organization admins' refresh tokens: a family per sign-in, one live
//! token at a time, rotated at each refresh (RFC 9700 §4.14.2). Only a
//! token's SHA-256 is stored. A spent token presented again revokes its
//! family; so does a refresh after the admin's sessions ended (the
//! account's session epoch, from `iam.user.v1`, above the family's; the
//! account deactivated; the organization gone or administered by another).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*};
use uuid::Uuid;

use super::{organization, Organization};

diesel::table! {
    admin_refresh_families (id) {
        id -> Uuid,
        organization_id -> Uuid,
        admin_reference_id -> Text,
        session_epoch -> Int8,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        revoked_reason -> Nullable<Text>,
    }
}

diesel::table! {
    admin_refresh_tokens (token_sha256) {
        token_sha256 -> Bytea,
        family_id -> Uuid,
        issued_at -> Timestamptz,
        expires_at -> Timestamptz,
        spent_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(admin_refresh_tokens -> admin_refresh_families (family_id));
diesel::allow_tables_to_appear_in_same_query!(admin_refresh_tokens, admin_refresh_families);

/// One sign-in: whose, and at which session epoch.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = admin_refresh_families)]
pub struct Family {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub admin_reference_id: String,
    pub session_epoch: i64,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Starts a family (a sign-in) with its first token.
pub fn start_family(
    conn: &mut PgConnection,
    organization_id: Uuid,
    admin_reference_id: &str,
    session_epoch: i64,
    token_sha256: &[u8],
    expires_at: DateTime<Utc>,
) -> QueryResult<Uuid> {
    conn.transaction(|conn| {
        let id = Uuid::now_v7();
        diesel::insert_into(admin_refresh_families::table)
            .values((
                admin_refresh_families::id.eq(id),
                admin_refresh_families::organization_id.eq(organization_id),
                admin_refresh_families::admin_reference_id.eq(admin_reference_id),
                admin_refresh_families::session_epoch.eq(session_epoch),
            ))
            .execute(conn)?;
        diesel::insert_into(admin_refresh_tokens::table)
            .values((
                admin_refresh_tokens::token_sha256.eq(token_sha256),
                admin_refresh_tokens::family_id.eq(id),
                admin_refresh_tokens::expires_at.eq(expires_at),
            ))
            .execute(conn)?;
        Ok(id)
    })
}

/// What became of a refresh.
#[derive(Debug)]
pub enum Rotation {
    /// The token was live: it is spent, its successor stored; the access
    /// token is issued for this family and organization.
    Rotated {
        family: Family,
        organization: Box<Organization>,
    },
    /// Unknown, expired, or of a revoked family.
    Invalid,
    /// A spent token came back (stolen, or raced by a second refresh):
    /// its family is revoked now, the newest token included.
    Reused,
    /// The admin's sessions ended, or the organization is gone: the
    /// family is revoked now.
    Ended(&'static str),
}

fn revoke_family(conn: &mut PgConnection, id: Uuid, reason: &str) -> QueryResult<()> {
    diesel::update(
        admin_refresh_families::table
            .find(id)
            .filter(admin_refresh_families::revoked_at.is_null()),
    )
    .set((
        admin_refresh_families::revoked_at.eq(Utc::now()),
        admin_refresh_families::revoked_reason.eq(reason),
    ))
    .execute(conn)
    .map(drop)
}

/// Why an admin's sessions no longer allow a refresh, if they do not.
fn ended(family: &Family, org: Option<&Organization>) -> Option<&'static str> {
    let Some(org) = org else {
        return Some("the organization no longer exists");
    };
    if org.admin_reference_id.as_deref() != Some(family.admin_reference_id.as_str()) {
        return Some("the account no longer administers the organization");
    }
    if !org.admin_is_active {
        return Some("the admin's account is deactivated");
    }
    if org.admin_session_epoch > family.session_epoch {
        return Some("the admin's sessions ended");
    }
    None
}

/// Spends the token whose SHA-256 is `presented` and stores `next` in its
/// place, in one transaction. The token's row is locked first: of two
/// refreshes of the same token, the second waits for the first, then finds
/// the token spent (and revokes the family).
pub fn rotate(
    conn: &mut PgConnection,
    presented: &[u8],
    next: &[u8],
    next_expires_at: DateTime<Utc>,
) -> QueryResult<Rotation> {
    conn.transaction(|conn| {
        let row: Option<(DateTime<Utc>, Option<DateTime<Utc>>, Family)> =
            admin_refresh_tokens::table
                .inner_join(admin_refresh_families::table)
                .filter(admin_refresh_tokens::token_sha256.eq(presented))
                .for_update()
                .select((
                    admin_refresh_tokens::expires_at,
                    admin_refresh_tokens::spent_at,
                    Family::as_select(),
                ))
                .first(conn)
                .optional()?;
        let Some((expires_at, spent_at, family)) = row else {
            return Ok(Rotation::Invalid);
        };
        if spent_at.is_some() {
            revoke_family(conn, family.id, "a spent refresh token was presented again")?;
            return Ok(Rotation::Reused);
        }
        if family.revoked_at.is_some() || expires_at <= Utc::now() {
            return Ok(Rotation::Invalid);
        }
        let org = organization(conn, family.organization_id)?;
        if let Some(why) = ended(&family, org.as_ref()) {
            revoke_family(conn, family.id, why)?;
            return Ok(Rotation::Ended(why));
        }
        let Some(organization) = org else {
            return Ok(Rotation::Invalid);
        };
        diesel::update(admin_refresh_tokens::table.find(presented))
            .set(admin_refresh_tokens::spent_at.eq(Utc::now()))
            .execute(conn)?;
        diesel::insert_into(admin_refresh_tokens::table)
            .values((
                admin_refresh_tokens::token_sha256.eq(next),
                admin_refresh_tokens::family_id.eq(family.id),
                admin_refresh_tokens::expires_at.eq(next_expires_at),
            ))
            .execute(conn)?;
        Ok(Rotation::Rotated {
            family,
            organization: Box::new(organization),
        })
    })
}

/// Revokes every live family of an organization's admin (its password
/// was changed through the directory). How many.
pub fn revoke_families_of(
    conn: &mut PgConnection,
    organization_id: Uuid,
    reason: &str,
) -> QueryResult<usize> {
    diesel::update(
        admin_refresh_families::table
            .filter(admin_refresh_families::organization_id.eq(organization_id))
            .filter(admin_refresh_families::revoked_at.is_null()),
    )
    .set((
        admin_refresh_families::revoked_at.eq(Utc::now()),
        admin_refresh_families::revoked_reason.eq(reason),
    ))
    .execute(conn)
}

/// Pruning ([`platform::retention`]): refresh tokens an hour past their
/// expiry (a spent one presented later is refused as unknown, not as a
/// reuse: it could not be used anyway), then families left without any
/// token.
pub fn retention_steps() -> Vec<platform::retention::Step> {
    use platform::retention::Step;
    let hour = Duration::from_secs(3600);
    vec![
        Step::older_than(
            "admin_refresh_tokens",
            hour,
            "DELETE FROM admin_refresh_tokens WHERE token_sha256 = ANY(ARRAY(\
               SELECT token_sha256 FROM admin_refresh_tokens WHERE expires_at < $1 \
                ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
        ),
        Step::older_than(
            "admin_refresh_families",
            hour,
            "DELETE FROM admin_refresh_families WHERE id = ANY(ARRAY(\
               SELECT f.id FROM admin_refresh_families f WHERE f.created_at < $1 \
                AND NOT EXISTS (SELECT 1 FROM admin_refresh_tokens t WHERE t.family_id = f.id) \
                LIMIT $2 FOR UPDATE SKIP LOCKED))",
        ),
    ]
}
