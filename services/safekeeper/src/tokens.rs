//! Issuing access and refresh tokens. Signing is pure CPU (Ed25519, tens
//! of microseconds); recording the token is part of the caller's
//! transaction.

use std::collections::BTreeSet;

use chrono::{Duration as ChronoDuration, Utc};
use diesel::pg::PgConnection;
use platform::jwt::{AccessClaims, ACCESS_TYP};
use serde::Serialize;
use uuid::Uuid;

use crate::{crypto, grants, state::AppState};

/// Parses a scope list: separated by spaces or commas, duplicates dropped.
pub fn parse_scopes(raw: &str) -> BTreeSet<String> {
    raw.split([' ', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub fn join(scopes: &BTreeSet<String>, sep: &str) -> String {
    scopes
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(sep)
}

/// The token response of RFC 6749 section 5.1.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// What to sign: everything but the times and the id.
pub struct Grant<'a> {
    pub sub: String,
    pub username: Option<String>,
    pub client_id: &'a str,
    pub user_id: Option<Uuid>,
    pub family: Option<Uuid>,
    pub scope: &'a BTreeSet<String>,
}

/// A signed access token.
pub struct Signed {
    pub token: String,
}

pub fn sign_access(state: &AppState, g: &Grant<'_>) -> anyhow::Result<Signed> {
    let now = Utc::now();
    let ttl = state.settings.access_ttl.as_secs() as i64;
    let jti = Uuid::now_v7();
    let claims = AccessClaims {
        iss: state.settings.issuer.clone(),
        sub: g.sub.clone(),
        aud: state.settings.audience.clone(),
        client_id: g.client_id.to_owned(),
        scope: join(g.scope, " "),
        iat: now.timestamp(),
        exp: now.timestamp() + ttl,
        jti: jti.to_string(),
        username: g.username.clone(),
        sid: g.family.map(|f| f.to_string()),
    };
    Ok(Signed {
        token: state.keys.sign(ACCESS_TYP, &claims)?,
    })
}

/// Builds the token response, storing a new refresh token (by its hash)
/// when `refresh` is set. Access tokens themselves are not stored: they
/// are checked against the revocation list and their grant.
pub fn respond(
    conn: &mut PgConnection,
    state: &AppState,
    g: &Grant<'_>,
    signed: Signed,
    refresh: bool,
) -> diesel::QueryResult<TokenResponse> {
    let refresh_token = match (refresh, g.family) {
        (true, Some(family)) => {
            let token = crypto::random_token();
            let exp =
                Utc::now() + ChronoDuration::seconds(state.settings.refresh_ttl.as_secs() as i64);
            grants::insert_refresh(
                conn,
                &crypto::digest(&token),
                family,
                &join(g.scope, " "),
                exp,
            )?;
            Some(token)
        }
        _ => None,
    };
    Ok(response(state, g, signed, refresh_token))
}

pub fn response(
    state: &AppState,
    g: &Grant<'_>,
    signed: Signed,
    refresh_token: Option<String>,
) -> TokenResponse {
    TokenResponse {
        access_token: signed.token,
        token_type: "Bearer",
        expires_in: state.settings.access_ttl.as_secs(),
        scope: join(g.scope, " "),
        refresh_token,
    }
}
