//! Who is calling: a superuser's session token, checked on every request
//! against the live account (a deactivated or demoted superuser loses
//! access at once, not at token expiry).

use std::{future::Future, pin::Pin};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use platform::jwt::{SessionClaims, TokenError};
use uuid::Uuid;

use crate::{error::ApiError, state::AppState, store};

pub fn bearer_token(req: &HttpRequest) -> Result<String, ApiError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthenticated("send 'Authorization: Bearer <session token>'".into())
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

/// The account behind a valid session token.
pub struct Caller(pub store::Account);

/// A caller who is an active superuser.
pub struct Superuser(pub store::Account);

async fn caller(req: HttpRequest) -> Result<store::Account, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered")
        .clone();
    let token = bearer_token(&req)?;
    let claims: SessionClaims = state.sessions.verify(&token).await.map_err(|e| match e {
        TokenError::Expired => {
            ApiError::Unauthenticated("the session token has expired; log in again".into())
        }
        other => ApiError::Unauthenticated(format!("invalid session token: {other}")),
    })?;
    let id: Uuid = claims
        .sub
        .parse()
        .map_err(|_| ApiError::Unauthenticated("invalid session token subject".into()))?;
    let account = platform::db::with_conn(&state.pool, move |c| {
        store::by_id(c, id).map_err(ApiError::from)
    })
    .await?
    .ok_or_else(|| ApiError::Unauthenticated("the account no longer exists".into()))?;
    if !account.is_active {
        return Err(ApiError::AccountInactive);
    }
    Ok(account)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { caller(req).await.map(Caller) })
    }
}

impl FromRequest for Superuser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let account = caller(req).await?;
            if !account.is_superuser {
                return Err(ApiError::Forbidden("this needs a superuser".into()));
            }
            Ok(Superuser(account))
        })
    }
}
