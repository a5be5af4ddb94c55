//! Who is calling: a session token of the authenticator (for the endpoints
//! of the task-management design, `/v1/authorize` and `/v1/permission`,
//! and the login cookie) or one of our access tokens (for the
//! admin API). Both are checked against the live read model, so a
//! deactivated user or a revoked grant stops working at once.

use actix_web::HttpRequest;
use platform::{
    db::with_conn,
    jwt::{session_still_valid, AccessClaims, SessionClaims, TokenError},
};
use uuid::Uuid;

use crate::{error::ApiError, grants, rbac, state::AppState};

fn authorization(req: &HttpRequest) -> Result<&str, ApiError> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthenticated("send 'Authorization: Bearer <token>'".into()))?
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("the Authorization header is not valid text".into()))
}

pub fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let value = authorization(req)?;
    match value.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
            Ok(t.trim().to_owned())
        }
        _ => Err(ApiError::Unauthenticated(
            "the Authorization header must use the Bearer scheme".into(),
        )),
    }
}

/// The session token of `POST /v1/authorize`: `Authorization: Bearer
/// <token>`, or the bare token with no scheme, as the task-management
/// design's clients send it. Only this path takes the bare form, for their
/// sake; the token is verified the same way either way. A value with a
/// space is a scheme and a credential, and only Bearer is accepted.
pub fn session_token_of_authorize(req: &HttpRequest) -> Result<String, ApiError> {
    let value = authorization(req)?.trim();
    if !value.is_empty() && !value.contains(' ') {
        return Ok(value.to_owned());
    }
    bearer(req)
}

fn token_error(kind: &str, e: TokenError) -> ApiError {
    match e {
        TokenError::KeysUnavailable => ApiError::Unavailable(
            "the token issuer's keys cannot be fetched right now; try again shortly".into(),
        ),
        other => ApiError::Unauthenticated(format!("invalid {kind}: {other}")),
    }
}

/// Why a genuine session token is refused once its session has ended.
pub const SESSION_ENDED: &str = "the session has ended; log in again";

/// A user known by a valid session token.
pub struct SessionUser {
    pub id: Uuid,
    pub username: String,
}

/// Verifies a session token and refuses a user the read model knows to be
/// deactivated (403), or a session the account has ended since (401: a
/// password change, a deactivation or a logout, see
/// `platform::jwt::session_still_valid`). (A user not yet in the read model
/// passed the authenticator's own checks at login.)
pub async fn session_user(state: &AppState, token: &str) -> Result<SessionUser, ApiError> {
    let claims: SessionClaims = state
        .sessions
        .verify(token)
        .await
        .map_err(|e| token_error("session token", e))?;
    let id: Uuid = claims
        .sub
        .parse()
        .map_err(|_| ApiError::Unauthenticated("invalid session token subject".into()))?;
    let user = with_conn(&state.pool, move |c| {
        rbac::user(c, id).map_err(ApiError::from)
    })
    .await?;
    if let Some(u) = user {
        if !u.is_active {
            return Err(ApiError::Forbidden("this account is deactivated".into()));
        }
        if !session_still_valid(&claims, u.session_epoch, &u.ended_sessions) {
            return Err(ApiError::Unauthenticated(SESSION_ENDED.into()));
        }
    }
    Ok(SessionUser {
        id,
        username: claims.username,
    })
}

/// Verifies one of our access tokens: signature, `typ`, issuer, audience,
/// expiry, not revoked, user still active.
pub async fn access_token(state: &AppState, token: &str) -> Result<AccessClaims, ApiError> {
    let claims: AccessClaims = state
        .access
        .verify(token)
        .await
        .map_err(|e| token_error("access token", e))?;
    let jti: Uuid = claims
        .jti
        .parse()
        .map_err(|_| ApiError::Unauthenticated("invalid access token id".into()))?;
    let sub = claims.sub.parse::<Uuid>().ok();
    let family = claims.sid.as_deref().and_then(|f| f.parse::<Uuid>().ok());
    let (revoked, inactive) = with_conn(&state.pool, move |c| -> Result<_, ApiError> {
        let revoked = grants::access_revoked(c, jti, family)?;
        let inactive = match sub {
            Some(u) => rbac::user(c, u)?.is_some_and(|u| !u.is_active),
            None => false,
        };
        Ok((revoked, inactive))
    })
    .await?;
    if revoked {
        return Err(ApiError::Unauthenticated(
            "the access token has been revoked".into(),
        ));
    }
    if inactive {
        return Err(ApiError::Forbidden("this account is deactivated".into()));
    }
    Ok(claims)
}

/// Whether an access token speaks for a person (a user `sub`, from a
/// session exchange or the code flow) rather than for a client itself
/// (client credentials: `sub` is the client id). Client ids that parse as
/// UUIDs are refused at creation, so the two cannot be confused.
pub fn is_persons_token(claims: &AccessClaims) -> bool {
    claims.sub != claims.client_id && claims.sub.parse::<Uuid>().is_ok()
}

/// An access token of a PERSON carrying `scope`, who still holds it: the
/// administrative API answers people only, so a client's own token (client
/// credentials) never grants a role or changes the catalogue, whatever
/// scopes it was given.
pub async fn require_persons_scope(
    req: &HttpRequest,
    state: &AppState,
    scope: &'static str,
) -> Result<AccessClaims, ApiError> {
    let claims = require_scope(req, state, scope).await?;
    if !is_persons_token(&claims) {
        return Err(ApiError::Forbidden(format!(
            "{scope} is honoured only in a person's token (from a session), never in a client's own token"
        )));
    }
    Ok(claims)
}

/// An access token carrying `scope`, whose user still holds it.
pub async fn require_scope(
    req: &HttpRequest,
    state: &AppState,
    scope: &'static str,
) -> Result<AccessClaims, ApiError> {
    let claims = access_token(state, &bearer(req)?).await?;
    if !claims.has_scope(scope) {
        return Err(ApiError::MissingScopes(vec![scope.to_owned()]));
    }
    if let Ok(user) = claims.sub.parse::<Uuid>() {
        let still = with_conn(&state.pool, move |c| {
            rbac::user_scopes(c, user).map_err(ApiError::from)
        })
        .await?;
        if !still.contains(scope) {
            return Err(ApiError::MissingScopes(vec![scope.to_owned()]));
        }
    }
    Ok(claims)
}
