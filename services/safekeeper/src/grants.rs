//! OAuth2 clients, authorization codes, refresh-token families and issued
//! access tokens. Tokens and codes are stored only as SHA-256 hashes.
//!
//! Every revocation (a token, a family, a client, a user) is published on
//! `oauth.revocation.v1` through the outbox, in the transaction that makes
//! it, so that resource servers refuse what it covers within a second
//! (`platform::revocation`).

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*};
use platform::{
    events::{enqueue, topics},
    revocation::{Kind, Revocation},
};
use uuid::Uuid;

use crate::schema::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = client)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub is_public: bool,
    pub first_party: bool,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// The code flow needs PKCE (the default, RFC 9700 2.1.1); `false` is
    /// an administrator's opt-out for a confidential client that cannot.
    pub pkce_required: bool,
}

impl Client {
    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }
}

pub fn client(conn: &mut PgConnection, id: &str) -> QueryResult<Option<Client>> {
    client::table
        .find(id)
        .select(Client::as_select())
        .first(conn)
        .optional()
}

pub fn clients(conn: &mut PgConnection) -> QueryResult<Vec<Client>> {
    client::table
        .select(Client::as_select())
        .order(client::id.asc())
        .load(conn)
}

pub struct NewClient {
    pub id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub first_party: bool,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub pkce_required: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("a client with this id exists already")]
    Exists,
    #[error("unknown scope {0:?}")]
    UnknownScope(String),
    #[error("no such client")]
    NotFound,
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

fn set_client_scopes(
    conn: &mut PgConnection,
    id: &str,
    scopes: &[String],
) -> Result<(), ClientError> {
    let found: Vec<(i32, String)> = scope::table
        .filter(scope::name.eq_any(scopes))
        .select((scope::id, scope::name))
        .load(conn)?;
    if let Some(m) = scopes.iter().find(|s| !found.iter().any(|(_, f)| f == *s)) {
        return Err(ClientError::UnknownScope(m.clone()));
    }
    diesel::delete(client_scope::table.filter(client_scope::client_id.eq(id))).execute(conn)?;
    let rows: Vec<_> = found
        .iter()
        .map(|(sid, _)| {
            (
                client_scope::client_id.eq(id),
                client_scope::scope_id.eq(*sid),
            )
        })
        .collect();
    diesel::insert_into(client_scope::table)
        .values(&rows)
        .execute(conn)?;
    Ok(())
}

pub fn create_client(conn: &mut PgConnection, c: NewClient) -> Result<(), ClientError> {
    conn.transaction(|conn| {
        diesel::insert_into(client::table)
            .values((
                client::id.eq(&c.id),
                client::name.eq(&c.name),
                client::is_public.eq(c.secret_hash.is_none()),
                client::secret_hash.eq(&c.secret_hash),
                client::first_party.eq(c.first_party),
                client::redirect_uris.eq(&c.redirect_uris),
                client::grant_types.eq(&c.grant_types),
                client::pkce_required.eq(c.pkce_required),
            ))
            .execute(conn)
            .map_err(|e| match e {
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ) => ClientError::Exists,
                other => ClientError::Db(other),
            })?;
        set_client_scopes(conn, &c.id, &c.scopes)
    })
}

#[derive(Default)]
pub struct ClientChange {
    pub name: Option<String>,
    pub first_party: Option<bool>,
    pub redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub secret_hash: Option<String>,
    pub pkce_required: Option<bool>,
}

pub fn update_client(
    conn: &mut PgConnection,
    id: &str,
    ch: ClientChange,
) -> Result<Client, ClientError> {
    conn.transaction(|conn| {
        let mut c = client::table
            .find(id)
            .for_update()
            .select(Client::as_select())
            .first(conn)
            .optional()?
            .ok_or(ClientError::NotFound)?;
        if let Some(v) = ch.name {
            c.name = v;
        }
        if let Some(v) = ch.first_party {
            c.first_party = v;
        }
        if let Some(v) = ch.redirect_uris {
            c.redirect_uris = v;
        }
        if let Some(v) = ch.grant_types {
            c.grant_types = v;
        }
        if let Some(v) = ch.pkce_required {
            c.pkce_required = v;
        }
        if ch.secret_hash.is_some() && !c.is_public {
            c.secret_hash = ch.secret_hash;
        }
        diesel::update(client::table.find(id))
            .set((
                client::name.eq(&c.name),
                client::first_party.eq(c.first_party),
                client::redirect_uris.eq(&c.redirect_uris),
                client::grant_types.eq(&c.grant_types),
                client::secret_hash.eq(&c.secret_hash),
                client::pkce_required.eq(c.pkce_required),
            ))
            .execute(conn)?;
        if let Some(s) = ch.scopes {
            set_client_scopes(conn, id, &s)?;
        }
        Ok(c)
    })
}

/// Deletes a client (its grants go with it) and publishes the revocation
/// of every token it was issued.
pub fn delete_client(conn: &mut PgConnection, id: &str) -> QueryResult<bool> {
    conn.transaction(|conn| {
        let deleted = diesel::delete(client::table.find(id)).execute(conn)? > 0;
        if deleted {
            publish(
                conn,
                &Revocation::now(Kind::Client, id, revocation_keep()),
                "client",
            )?;
        }
        Ok(deleted)
    })
}

/// The longest lifetime of an access token this process issues (seconds;
/// 0 until [`note_access_ttl`]): how long a revocation must be kept.
static LONGEST_ACCESS_TTL: AtomicU64 = AtomicU64::new(0);

/// Records the access-token lifetime of the settings (at start).
pub fn note_access_ttl(ttl: Duration) {
    LONGEST_ACCESS_TTL.fetch_max(ttl.as_secs(), Ordering::Relaxed);
}

/// How long a family's, client's or user's revocation is kept: the
/// longest access-token lifetime (a day until one is recorded).
fn revocation_keep() -> Duration {
    match LONGEST_ACCESS_TTL.load(Ordering::Relaxed) {
        0 => Duration::from_secs(24 * 3600),
        secs => Duration::from_secs(secs),
    }
}

/// Queues `r` on `oauth.revocation.v1`, in the caller's transaction.
fn publish(conn: &mut PgConnection, r: &Revocation, table: &str) -> QueryResult<()> {
    enqueue(conn, topics::REVOCATION, &r.envelope(table))
}

pub fn new_family(
    conn: &mut PgConnection,
    client_id: &str,
    user_id: Option<Uuid>,
) -> QueryResult<Uuid> {
    let id = Uuid::now_v7();
    diesel::insert_into(grant_family::table)
        .values((
            grant_family::id.eq(id),
            grant_family::client_id.eq(client_id),
            grant_family::user_id.eq(user_id),
        ))
        .execute(conn)?;
    Ok(id)
}

/// Revokes a family: its refresh tokens stop working and its access
/// tokens (which name the family in `sid`) show as inactive, here and, once
/// the revocation is published, at every resource server.
pub fn revoke_family(conn: &mut PgConnection, family: Uuid) -> QueryResult<()> {
    conn.transaction(|conn| {
        let revoked = diesel::update(
            grant_family::table
                .find(family)
                .filter(grant_family::revoked_at.is_null()),
        )
        .set(grant_family::revoked_at.eq(Utc::now()))
        .execute(conn)?;
        if revoked > 0 {
            publish(
                conn,
                &Revocation::now(Kind::Sid, family.to_string(), revocation_keep()),
                "grant_family",
            )?;
        }
        Ok(())
    })
}

/// Revokes every grant of a user (deactivation), and publishes the
/// revocation of every token issued to them so far.
pub fn revoke_user(conn: &mut PgConnection, user: Uuid) -> QueryResult<()> {
    conn.transaction(|conn| {
        diesel::update(
            grant_family::table
                .filter(grant_family::user_id.eq(user))
                .filter(grant_family::revoked_at.is_null()),
        )
        .set(grant_family::revoked_at.eq(Utc::now()))
        .execute(conn)?;
        publish(
            conn,
            &Revocation::now(Kind::User, user.to_string(), revocation_keep()),
            "users",
        )
    })
}

pub struct NewCode<'a> {
    pub code_hash: &'a str,
    pub family: Uuid,
    pub client_id: &'a str,
    pub user_id: Uuid,
    pub redirect_uri: &'a str,
    pub scope: &'a str,
    pub code_challenge: Option<&'a str>,
    pub expires_at: DateTime<Utc>,
}

pub fn insert_code(conn: &mut PgConnection, c: NewCode<'_>) -> QueryResult<()> {
    diesel::insert_into(authorization_code::table)
        .values((
            authorization_code::code_hash.eq(c.code_hash),
            authorization_code::family_id.eq(c.family),
            authorization_code::client_id.eq(c.client_id),
            authorization_code::user_id.eq(c.user_id),
            authorization_code::redirect_uri.eq(c.redirect_uri),
            authorization_code::scope.eq(c.scope),
            authorization_code::code_challenge.eq(c.code_challenge),
            authorization_code::expires_at.eq(c.expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = authorization_code)]
pub struct Code {
    pub family_id: Uuid,
    pub client_id: String,
    pub user_id: Uuid,
    pub redirect_uri: String,
    pub scope: String,
    pub code_challenge: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub consumed_at: Option<DateTime<Utc>>,
}

pub enum Redeemed {
    Fresh(Code),
    /// Seen before: what was issued from it has now been revoked.
    Replayed,
    Expired,
    Unknown,
}

/// Consumes a code once. A second use revokes the family it started.
pub fn redeem_code(conn: &mut PgConnection, code_hash: &str) -> QueryResult<Redeemed> {
    let Some(code) = authorization_code::table
        .find(code_hash)
        .for_update()
        .select(Code::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(Redeemed::Unknown);
    };
    if code.consumed_at.is_some() {
        revoke_family(conn, code.family_id)?;
        return Ok(Redeemed::Replayed);
    }
    diesel::update(authorization_code::table.find(code_hash))
        .set(authorization_code::consumed_at.eq(Utc::now()))
        .execute(conn)?;
    if code.expires_at < Utc::now() {
        return Ok(Redeemed::Expired);
    }
    Ok(Redeemed::Fresh(code))
}

pub fn insert_refresh(
    conn: &mut PgConnection,
    hash: &str,
    family: Uuid,
    scope: &str,
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(refresh_token::table)
        .values((
            refresh_token::token_hash.eq(hash),
            refresh_token::family_id.eq(family),
            refresh_token::scope.eq(scope),
            refresh_token::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

pub struct Refresh {
    pub family_id: Uuid,
    pub scope: String,
    pub client_id: String,
    pub user_id: Option<Uuid>,
}

#[derive(Queryable)]
struct RefreshRow {
    family_id: Uuid,
    scope: String,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    client_id: String,
    user_id: Option<Uuid>,
    revoked_at: Option<DateTime<Utc>>,
}

#[derive(Queryable)]
struct LiveRefresh {
    family_id: Uuid,
    scope: String,
    expires_at: DateTime<Utc>,
    client_id: String,
    user_id: Option<Uuid>,
}

pub enum Rotated {
    Fresh(Refresh),
    /// A spent token came back: the whole family is now revoked.
    Reused,
    Invalid,
}

/// Spends a refresh token of `client_id` once. Reuse of a spent one
/// revokes the family; another client's token is simply invalid.
pub fn spend_refresh(
    conn: &mut PgConnection,
    hash: &str,
    for_client: &str,
) -> QueryResult<Rotated> {
    let row: Option<RefreshRow> = refresh_token::table
        .inner_join(grant_family::table.on(grant_family::id.eq(refresh_token::family_id)))
        .filter(refresh_token::token_hash.eq(hash))
        .for_update()
        .select((
            refresh_token::family_id,
            refresh_token::scope,
            refresh_token::expires_at,
            refresh_token::used_at,
            grant_family::client_id,
            grant_family::user_id,
            grant_family::revoked_at,
        ))
        .first(conn)
        .optional()?;
    let Some(RefreshRow {
        family_id,
        scope,
        expires_at,
        used_at,
        client_id,
        user_id,
        revoked_at,
    }) = row
    else {
        return Ok(Rotated::Invalid);
    };
    if client_id != for_client {
        return Ok(Rotated::Invalid);
    }
    if used_at.is_some() {
        revoke_family(conn, family_id)?;
        return Ok(Rotated::Reused);
    }
    if revoked_at.is_some() || expires_at < Utc::now() {
        return Ok(Rotated::Invalid);
    }
    diesel::update(refresh_token::table.find(hash))
        .set(refresh_token::used_at.eq(Utc::now()))
        .execute(conn)?;
    Ok(Rotated::Fresh(Refresh {
        family_id,
        scope,
        client_id,
        user_id,
    }))
}

/// What introspection needs of a refresh token, without spending it.
pub fn peek_refresh(
    conn: &mut PgConnection,
    hash: &str,
) -> QueryResult<Option<(Refresh, DateTime<Utc>)>> {
    let row: Option<LiveRefresh> = refresh_token::table
        .inner_join(grant_family::table.on(grant_family::id.eq(refresh_token::family_id)))
        .filter(refresh_token::token_hash.eq(hash))
        .filter(refresh_token::used_at.is_null())
        .filter(grant_family::revoked_at.is_null())
        .filter(refresh_token::expires_at.gt(Utc::now()))
        .select((
            refresh_token::family_id,
            refresh_token::scope,
            refresh_token::expires_at,
            grant_family::client_id,
            grant_family::user_id,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|r| {
        let LiveRefresh {
            family_id,
            scope,
            expires_at,
            client_id,
            user_id,
        } = r;
        (
            Refresh {
                family_id,
                scope,
                client_id,
                user_id,
            },
            expires_at,
        )
    }))
}

/// True when an access token was revoked by itself or with its grant.
pub fn access_revoked(
    conn: &mut PgConnection,
    jti: Uuid,
    family: Option<Uuid>,
) -> QueryResult<bool> {
    let by_id = diesel::select(diesel::dsl::exists(revoked_access_token::table.find(jti)))
        .get_result::<bool>(conn)?;
    if by_id {
        return Ok(true);
    }
    match family {
        Some(f) => Ok(grant_family::table
            .find(f)
            .select(grant_family::revoked_at)
            .first::<Option<DateTime<Utc>>>(conn)
            .optional()?
            .is_none_or(|revoked| revoked.is_some())),
        None => Ok(false),
    }
}

/// Revokes one access token (until its expiry) and publishes it.
pub fn revoke_access(
    conn: &mut PgConnection,
    jti: Uuid,
    client_id: &str,
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    conn.transaction(|conn| {
        let inserted = diesel::insert_into(revoked_access_token::table)
            .values((
                revoked_access_token::jti.eq(jti),
                revoked_access_token::client_id.eq(client_id),
                revoked_access_token::expires_at.eq(expires_at),
            ))
            .on_conflict_do_nothing()
            .execute(conn)?;
        if inserted > 0 {
            let r = Revocation {
                kind: Kind::Jti,
                value: jti.to_string(),
                revoked_at: Utc::now().timestamp(),
                expires_at: expires_at.timestamp(),
            };
            publish(conn, &r, "revoked_access_token")?;
        }
        Ok(())
    })
}

/// Deletes what can no longer matter, in this order (see
/// [`platform::retention`]): codes `grace` past their expiry (a replay
/// within it still revokes what the code issued; later it is refused as
/// unknown, and what the code issued has expired too), refresh tokens
/// `grace` past theirs (likewise for a spent one replayed),
/// revocation-list entries of tokens that have expired anyway, and grant
/// families left without codes or refresh tokens whose access tokens
/// (`access_ttl`) are all expired. An access token whose family is gone
/// counts as revoked, so a family is only removed an hour after nothing
/// it issued can still be presented.
pub fn retention_steps(access_ttl: Duration, grace: Duration) -> Vec<platform::retention::Step> {
    use platform::retention::Step;
    let settled = access_ttl.saturating_add(Duration::from_secs(3600));
    vec![
        Step::older_than(
            "authorization_code",
            grace,
            "DELETE FROM authorization_code WHERE code_hash = ANY(ARRAY(\
               SELECT code_hash FROM authorization_code WHERE expires_at < $1 \
                LIMIT $2 FOR UPDATE SKIP LOCKED))",
        ),
        Step::older_than(
            "refresh_token",
            grace,
            "DELETE FROM refresh_token WHERE token_hash = ANY(ARRAY(\
               SELECT token_hash FROM refresh_token WHERE expires_at < $1 \
                LIMIT $2 FOR UPDATE SKIP LOCKED))",
        ),
        Step::older_than(
            "revoked_access_token",
            Duration::ZERO,
            "DELETE FROM revoked_access_token WHERE jti = ANY(ARRAY(\
               SELECT jti FROM revoked_access_token WHERE expires_at < $1 \
                ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
        ),
        Step::older_than(
            "grant_family",
            settled,
            "DELETE FROM grant_family WHERE id = ANY(ARRAY(\
               SELECT f.id FROM grant_family f WHERE f.created_at < $1 \
                  AND NOT EXISTS (SELECT 1 FROM refresh_token r WHERE r.family_id = f.id) \
                  AND NOT EXISTS (SELECT 1 FROM authorization_code a WHERE a.family_id = f.id) \
                LIMIT $2 FOR UPDATE OF f SKIP LOCKED))",
        ),
    ]
}
