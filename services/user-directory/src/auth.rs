//! Who is calling: an organization's admin, by the token `POST
//! /admin/login` issued (EdDSA, `typ: org+jwt`, served in our JWKS). The
//! organization is checked on every request, so a deleted organization's
//! tokens stop working at once.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, RwLock},
};

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

/// Tokens verified already, with their claims, until they expire: a
/// signature is checked once per token, not once per request. A hit needs
/// the very same token text, so nothing unverified ever matches; what
/// may change after issue (the organization, its admin) is still checked
/// in the database on every request.
pub struct TokenCache {
    entries: RwLock<HashMap<String, Arc<OrgClaims>>>,
    capacity: usize,
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    fn get(&self, token: &str, now: i64) -> Option<Arc<OrgClaims>> {
        let entries = self.entries.read().ok()?;
        entries.get(token).filter(|c| c.exp > now).cloned()
    }

    fn put(&self, token: &str, claims: Arc<OrgClaims>, now: i64) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= self.capacity {
            entries.retain(|_, c| c.exp > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(token.to_owned(), claims);
    }
}

/// The verified claims of the caller's organization token (signature,
/// `typ`, issuer, expiry), from the cache when this token was seen.
pub async fn verified_claims(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Arc<OrgClaims>, ApiError> {
    let token = bearer_token(req)?;
    let now = chrono::Utc::now().timestamp();
    if let Some(claims) = state.token_cache.get(&token, now) {
        return Ok(claims);
    }
    let claims: OrgClaims = state.org_tokens.verify(&token).await.map_err(|e| match e {
        TokenError::Expired => {
            ApiError::Unauthenticated("the token has expired; log in again".into())
        }
        other => ApiError::Unauthenticated(format!("invalid token: {other}")),
    })?;
    let claims = Arc::new(claims);
    state.token_cache.put(&token, claims.clone(), now);
    Ok(claims)
}

/// The organization as the database holds it now, if the token's subject
/// still administers it.
pub fn still_admin(
    claims: &OrgClaims,
    organization: Option<store::Organization>,
) -> Result<store::Organization, ApiError> {
    let organization = organization
        .ok_or_else(|| ApiError::Unauthenticated("the organization no longer exists".into()))?;
    if organization.admin_reference_id.as_deref() != Some(claims.sub.as_str()) {
        return Err(ApiError::Unauthenticated(
            "the token's subject no longer administers this organization".into(),
        ));
    }
    Ok(organization)
}

fn app_state(req: &HttpRequest) -> web::Data<AppState> {
    req.app_data::<web::Data<AppState>>()
        .expect("AppState is registered")
        .clone()
}

async fn org_admin(req: HttpRequest) -> Result<OrgAdmin, ApiError> {
    let state = app_state(&req);
    let claims = verified_claims(&state, &req).await?;
    let id = claims.org;
    let organization = platform::db::with_conn(&state.pool, move |c| {
        store::organization(c, id).map_err(ApiError::from)
    })
    .await?;
    let organization = still_admin(&claims, organization)?;
    Ok(OrgAdmin {
        organization,
        claims: (*claims).clone(),
    })
}

/// A verified organization token whose organization and admin are not
/// looked up yet: for routes that check them in the same query as their
/// own read (see [`still_admin`]).
pub struct OrgToken(pub Arc<OrgClaims>);

impl FromRequest for OrgToken {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req);
            verified_claims(&state, &req).await.map(OrgToken)
        })
    }
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
