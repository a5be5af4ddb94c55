//! Who is calling: an organization's admin, by the token `POST
//! /admin/login` issued (EdDSA, `typ: org+jwt`, served in our JWKS). The
//! organization is checked on every request, so a deleted organization's
//! tokens stop working at once; so is its admin's standing at the
//! authenticator, as `iam.user.v1` brings it: a deactivation, a password
//! change or a logout of every device (the account's session epoch rising
//! above the token's `sep`) ends the admin's tokens too.

use std::{future::Future, pin::Pin, sync::Arc};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use platform::jwt::TokenError;

pub use crate::org_token::{OrgClaims, TokenCache, ORG_TYP};
use crate::{error::ApiError, state::AppState, store};

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
/// still administers it and the token has outlived none of the admin's
/// sessions: the account is not known to be deactivated, and its session
/// epoch (from `iam.user.v1`) is not above the token's `sep`. With WorkOS
/// the directory learns no epochs: the stored one stays 0.
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
    if !organization.admin_is_active {
        return Err(ApiError::Unauthenticated(
            "the admin's account is deactivated".into(),
        ));
    }
    if organization.admin_session_epoch > claims.sep {
        return Err(ApiError::Unauthenticated(
            "the admin's sessions have ended (a password change or a sign-out everywhere); log in again"
                .into(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn org(epoch: i64, active: bool) -> store::Organization {
        let now = chrono::Utc::now();
        store::Organization {
            id: Uuid::nil(),
            name: "acme".into(),
            status: "active".into(),
            admin_email: "admin@acme.example".into(),
            admin_login: "admin".into(),
            admin_reference_id: Some("account-1".into()),
            version: 1,
            created_at: now,
            updated_at: now,
            admin_session_epoch: epoch,
            admin_is_active: active,
            admin_provider_version: Some(3),
        }
    }

    fn claims(sep: i64) -> OrgClaims {
        OrgClaims {
            iss: "http://127.0.0.1:5003".into(),
            sub: "account-1".into(),
            org: Uuid::nil(),
            org_name: "acme".into(),
            iat: 0,
            exp: i64::MAX,
            jti: "j".into(),
            sep,
        }
    }

    #[test]
    fn a_token_from_before_the_admins_sessions_ended_is_refused() {
        assert!(still_admin(&claims(2), Some(org(2, true))).is_ok());
        assert!(still_admin(&claims(3), Some(org(2, true))).is_ok());
        assert!(still_admin(&claims(1), Some(org(2, true))).is_err());
    }

    #[test]
    fn a_deactivated_admins_token_is_refused() {
        assert!(still_admin(&claims(5), Some(org(0, false))).is_err());
    }

    #[test]
    fn tokens_without_sep_read_as_epoch_zero() {
        let mut v = serde_json::to_value(claims(7)).unwrap();
        v.as_object_mut().unwrap().remove("sep");
        let c: OrgClaims = serde_json::from_value(v).unwrap();
        assert_eq!(c.sep, 0);
        // Good while the directory knows of no epoch (WorkOS, or no event yet).
        assert!(still_admin(&c, Some(org(0, true))).is_ok());
        assert!(still_admin(&c, Some(org(1, true))).is_err());
    }
}
