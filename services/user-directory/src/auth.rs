//! Who is calling: an organization's admin, by the token `POST
//! /admin/login` issued (EdDSA, `typ: org+jwt`, served in our JWKS). The
//! organization is checked on every request, so a deleted organization's
//! tokens stop working at once.

use std::{future::Future, pin::Pin};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use platform::jwt::TokenError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{error::ApiError, state::AppState, store};

/// `typ` of the organization admins' tokens.
pub const ORG_TYP: &str = "org+jwt";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrgClaims {
    pub iss: String,
    /// The admin's account at the identity provider.
    pub sub: String,
    /// The organization's id (stable across renames).
    pub org: Uuid,
    pub org_name: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// The admin of one organization, and that organization as it is now.
pub struct OrgAdmin {
    pub organization: store::Organization,
    pub claims: OrgClaims,
}

pub fn bearer_token(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthenticated(
                "send 'Authorization: Bearer <token from POST /admin/login>'".into(),
            )
        })?
        .to_str()
        .map_err(|_| {
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

async fn org_admin(req: HttpRequest) -> Result<OrgAdmin, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered")
        .clone();
    let token = bearer_token(&req)?;
    let claims: OrgClaims = state.org_tokens.verify(&token).await.map_err(|e| match e {
        TokenError::Expired => {
            ApiError::Unauthenticated("the token has expired; log in again".into())
        }
        other => ApiError::Unauthenticated(format!("invalid token: {other}")),
    })?;
    let id = claims.org;
    let organization = platform::db::with_conn(&state.pool, move |c| {
        store::organization(c, id).map_err(ApiError::from)
    })
    .await?
    .ok_or_else(|| ApiError::Unauthenticated("the organization no longer exists".into()))?;
    if organization.admin_reference_id.as_deref() != Some(claims.sub.as_str()) {
        return Err(ApiError::Unauthenticated(
            "the token's subject no longer administers this organization".into(),
        ));
    }
    Ok(OrgAdmin {
        organization,
        claims,
    })
}

impl FromRequest for OrgAdmin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(org_admin(req.clone()))
    }
}

impl OrgAdmin {
    /// Refuses anything about an organization other than the caller's.
    pub fn must_own(&self, name: &str) -> Result<(), ApiError> {
        if self.organization.name.eq_ignore_ascii_case(name.trim()) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "you administer another organization; this one is not yours".into(),
            ))
        }
    }
}
