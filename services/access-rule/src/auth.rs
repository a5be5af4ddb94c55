//! Who may use the operator API: a caller with the static operator token
//! (`OPERATOR_TOKEN`, compared in constant time), or an authenticator
//! session token of a user in `OPERATOR_USERNAMES` whose account is not
//! deactivated.

use std::{future::Future, pin::Pin};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use platform::jwt::{SessionClaims, TokenError};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::{domain::UserId, error::ApiError, state::AppState, store};

fn bearer_token(req: &HttpRequest) -> Result<String, ApiError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthenticated(
                "send 'Authorization: Bearer <operator token or session token>'".into(),
            )
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

/// An operator; the name is recorded with what they do.
pub struct Operator(pub String);

async fn operator(req: HttpRequest) -> Result<Operator, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered")
        .clone();
    let token = bearer_token(&req)?;
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
    if !state
        .settings
        .operator_usernames
        .iter()
        .any(|u| u == &claims.username)
    {
        return Err(ApiError::Forbidden(
            "this needs an operator (a user in OPERATOR_USERNAMES)".into(),
        ));
    }
    // A deactivated account loses access as soon as iam.user.v1 says so.
    if let Ok(id) = UserId::parse(&claims.sub) {
        let r = platform::db::with_conn(&state.pool, move |c| {
            store::restrictions(c, &id).map_err(ApiError::from)
        })
        .await?;
        if r.is_some_and(|r| !r.is_active) {
            return Err(ApiError::Forbidden("this account is deactivated".into()));
        }
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
