//! Organization admins' tokens: what `POST /admin/login` answers (an
//! access token and a refresh token), and `POST /admin/refresh`, which
//! rotates the refresh token (see `store::admin_refresh`).

use actix_web::{http::header, web, HttpResponse};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use platform::db::with_conn;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::{
    auth::{OrgClaims, ORG_TYP},
    error::ApiError,
    state::AppState,
    store::{
        admin_refresh::{self, Rotation},
        Organization,
    },
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/refresh", web::post().to(refresh));
}

/// The answer of a sign-in and of a refresh.
#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    organization_name: String,
    refresh_token: String,
    refresh_token_expires_in: u64,
}

/// A refresh token longer than this is no token of ours (they are 43
/// characters).
const MAX_REFRESH_TOKEN_LEN: usize = 256;

/// 256 random bits, base64url: the token, and the SHA-256 that is stored.
fn new_refresh_token() -> Result<(String, Vec<u8>), ApiError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("no randomness for a refresh token")))?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let digest = sha256(&token);
    Ok((token, digest))
}

fn sha256(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

fn respond(
    state: &AppState,
    org: &Organization,
    subject: String,
    session_epoch: i64,
    refresh_token: String,
) -> Result<HttpResponse, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let ttl = state.settings.org_token_ttl.as_secs();
    let claims = OrgClaims {
        iss: state.settings.issuer.clone(),
        sub: subject,
        org: org.id,
        org_name: org.name.clone(),
        iat: now,
        exp: now + ttl as i64,
        jti: uuid::Uuid::new_v4().to_string(),
        sep: session_epoch,
    };
    let access_token = state.keys.sign(ORG_TYP, &claims)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(TokenResponse {
            access_token,
            token_type: "bearer",
            expires_in: ttl,
            organization_name: org.name.clone(),
            refresh_token,
            refresh_token_expires_in: state.settings.admin_refresh_ttl.as_secs(),
        }))
}

fn refresh_expiry(state: &AppState) -> chrono::DateTime<chrono::Utc> {
    let ttl = chrono::Duration::from_std(state.settings.admin_refresh_ttl)
        .unwrap_or_else(|_| chrono::Duration::days(365_000));
    chrono::Utc::now()
        .checked_add_signed(ttl)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// The tokens of a sign-in that the provider accepted: a new refresh
/// family for `subject` (the admin's account) at its `session_epoch`.
pub(crate) async fn signed_in(
    state: &AppState,
    org: &Organization,
    subject: String,
    session_epoch: i64,
) -> Result<HttpResponse, ApiError> {
    let (refresh_token, digest) = new_refresh_token()?;
    let (org_id, s, expires_at) = (org.id, subject.clone(), refresh_expiry(state));
    with_conn(&state.pool, move |c| {
        admin_refresh::start_family(c, org_id, &s, session_epoch, &digest, expires_at)
            .map_err(ApiError::from)
    })
    .await?;
    respond(state, org, subject, session_epoch, refresh_token)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: SecretString,
}

/// `POST /admin/refresh` (anyone holding a refresh token):
/// `{refresh_token}` to a new access token and a new refresh token, as
/// login answers; the presented one is spent. 400 `invalid_grant` for a
/// token unknown, expired, spent or revoked, or whose admin's sessions
/// have ended (a password change, a deactivation, a sign-out everywhere),
/// all alike; a spent token presented again also revokes every token of
/// its sign-in.
async fn refresh(
    state: web::Data<AppState>,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let presented = body.into_inner().refresh_token;
    let presented = presented.expose_secret();
    if presented.is_empty() || presented.len() > MAX_REFRESH_TOKEN_LEN {
        return Err(ApiError::InvalidGrant);
    }
    let digest = sha256(presented);
    let (next, next_digest) = new_refresh_token()?;
    let expires_at = refresh_expiry(&state);
    let rotation = with_conn(&state.pool, move |c| {
        admin_refresh::rotate(c, &digest, &next_digest, expires_at).map_err(ApiError::from)
    })
    .await?;
    match rotation {
        Rotation::Rotated {
            family,
            organization,
        } => respond(
            &state,
            &organization,
            family.admin_reference_id,
            family.session_epoch,
            next,
        ),
        Rotation::Reused => {
            tracing::warn!("a spent refresh token was presented again; its family is revoked");
            Err(ApiError::InvalidGrant)
        }
        Rotation::Ended(why) => {
            tracing::info!(reason = why, "a refresh refused; its family is revoked");
            Err(ApiError::InvalidGrant)
        }
        Rotation::Invalid => Err(ApiError::InvalidGrant),
    }
}
