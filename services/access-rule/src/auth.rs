//! Who may call what.
//!
//! - The operator API: a caller with the static operator token
//!   (`OPERATOR_TOKEN`, compared in constant time), or an authenticator
//!   session token of an account that is an operator: its id is listed in
//!   `OPERATOR_ACCOUNT_IDS`, or `iam.user.v1` says it is a superuser. Never
//!   a username: anyone may register any free name. A deactivated account
//!   is no operator.
//! - `POST /event`: a producer, i.e. a safekeeper access token obtained by
//!   client credentials with the scope `write:event`.
//! - `/canmessage`, `/canpurchase`: anyone, or with `REQUIRE_READ_TOKEN` an
//!   access token with `read:restriction`.

use std::{future::Future, pin::Pin};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use platform::jwt::{AccessClaims, SessionClaims, TokenError};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::{domain::UserId, error::ApiError, state::AppState, store};

/// The scope of event producers (`POST /event`).
pub const WRITE_EVENT: &str = "write:event";
/// The scope of checks' callers when `REQUIRE_READ_TOKEN` is set.
pub const READ_RESTRICTION: &str = "read:restriction";

fn bearer_token(req: &HttpRequest, what: &str) -> Result<String, ApiError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthenticated(format!("send 'Authorization: Bearer <{what}>'"))
        })?;
    let value = header.to_str().map_err(|_| {
        ApiError::Unauthenticated("the Authorization header is not valid text".into())
    })?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim().to_owned())
        }
        _ => Err(ApiError::Unauthenticated(
            "the Authorization header must use the Bearer scheme".into(),
        )),
    }
}

fn app_state(req: &HttpRequest) -> web::Data<AppState> {
    req.app_data::<web::Data<AppState>>()
        .expect("AppState is registered")
        .clone()
}

/// Whether the safekeeper revoked this token (its `jti`, its grant, its
/// client or its user), as `oauth.revocation.v1` says. Checked on every
/// request, cached tokens included: memory only.
fn is_revoked(state: &AppState, claims: &AccessClaims) -> bool {
    state.revocations.is_revoked(claims)
}

/// A safekeeper access token holding `scope` (401 without a valid token,
/// 403 without the scope).
async fn access_token(req: &HttpRequest, scope: &str) -> Result<AccessClaims, ApiError> {
    let state = app_state(req);
    let token = bearer_token(req, &format!("access token with the scope {scope}"))?;
    let claims = match state.tokens.get(&token) {
        Some(c) => c,
        None => {
            let c: AccessClaims = state.access.verify(&token).await.map_err(|e| match e {
                TokenError::KeysUnavailable => ApiError::Unavailable(
                    "the safekeeper's keys cannot be fetched to verify the access token".into(),
                ),
                TokenError::Expired => ApiError::Unauthenticated(
                    "the access token has expired; obtain a new one".into(),
                ),
                other => ApiError::Unauthenticated(format!("invalid access token: {other}")),
            })?;
            state.tokens.put(&token, &c);
            c
        }
    };
    if is_revoked(&state, &claims) {
        return Err(ApiError::Unauthenticated(
            "the access token was revoked".into(),
        ));
    }
    if !claims.has_scope(scope) {
        return Err(ApiError::Forbidden(format!(
            "the access token lacks the scope {scope}"
        )));
    }
    Ok(claims)
}

/// An event producer: a client holding `write:event`, named by its id.
pub struct Producer {
    pub client_id: String,
}

async fn producer(req: HttpRequest) -> Result<Producer, ApiError> {
    let claims = access_token(&req, WRITE_EVENT).await?;
    // Only a client-credentials token: a person's token names its user.
    if claims.sub != claims.client_id {
        return Err(ApiError::Forbidden(
            "events are posted with a producer's client-credentials token".into(),
        ));
    }
    Ok(Producer {
        client_id: claims.client_id,
    })
}

impl FromRequest for Producer {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(producer(req))
    }
}

/// With `REQUIRE_READ_TOKEN`, a check needs `read:restriction`; otherwise
/// this returns at once.
pub async fn reader(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    if state.settings.require_read_token {
        access_token(req, READ_RESTRICTION).await?;
    }
    Ok(())
}

/// An operator; the name is recorded with what they do.
pub struct Operator(pub String);

async fn operator(req: HttpRequest) -> Result<Operator, ApiError> {
    let state = app_state(&req);
    let token = bearer_token(&req, "operator token or session token")?;
    if let Some(expected) = &state.settings.operator_token {
        if bool::from(token.as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
            return Ok(Operator("operator-token".into()));
        }
    }
    if token.split('.').count() != 3 {
        return Err(ApiError::Unauthenticated("invalid operator token".into()));
    }
    let claims: SessionClaims = state.sessions.verify(&token).await.map_err(|e| match e {
        TokenError::KeysUnavailable => ApiError::Unavailable(
            "the authenticator's keys cannot be fetched to verify the session token".into(),
        ),
        TokenError::Expired => {
            ApiError::Unauthenticated("the session token has expired; log in again".into())
        }
        other => ApiError::Unauthenticated(format!("invalid session token: {other}")),
    })?;
    // The account is an operator by its id or its superuser flag, and a
    // deactivated account loses access as soon as iam.user.v1 says so.
    let Ok(id) = UserId::parse(&claims.sub) else {
        return Err(ApiError::Unauthenticated(
            "the session token names no account".into(),
        ));
    };
    let listed = state.settings.operator_account_ids.contains(&claims.sub);
    let (restrictions, superuser) = platform::db::with_conn(&state.pool, move |c| {
        Ok::<_, ApiError>((
            store::restrictions(c, &id)?,
            store::is_superuser(c, id.as_str())?,
        ))
    })
    .await?;
    if restrictions.is_some_and(|r| !r.is_active) {
        return Err(ApiError::Forbidden("this account is deactivated".into()));
    }
    if !listed && !superuser {
        return Err(ApiError::Forbidden(
            "this needs an operator: a superuser, or an account listed in OPERATOR_ACCOUNT_IDS"
                .into(),
        ));
    }
    Ok(Operator(claims.username))
}

impl FromRequest for Operator {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(operator(req))
    }
}
