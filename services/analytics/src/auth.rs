//! Who is calling, and whether they may: an access token of the safekeeper
//! (verified locally against its cached JWKS: algorithm, `typ: at+jwt`,
//! issuer, audience, expiry), then the users read model. A user the read
//! model marks inactive is refused with 401 from the moment the event is
//! applied; a scope the user no longer holds is refused with 403 even if
//! the token still carries it. A token the safekeeper revoked
//! (`oauth.revocation.v1`) is refused with 401 on every request.
//!
//! Every report needs `read:analytics` (the admin role's). A token of a
//! client (client credentials: `sub` is the client id) that carries it
//! may read them too: there is no user behind it to check.

use std::{future::Future, marker::PhantomData, pin::Pin};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use platform::{
    db::with_conn,
    jwt::{AccessClaims, TokenError},
};
use uuid::Uuid;

use crate::{error::ApiError, state::AppState, store};

pub const READ: &str = "read:analytics";

/// A scope as a type, so a handler's signature says what it needs.
pub trait Scope {
    const NAME: &'static str;
}

/// `read:analytics`: every report.
pub struct ReadAnalytics;
impl Scope for ReadAnalytics {
    const NAME: &'static str = READ;
}

pub enum Principal {
    User(store::User),
    Client { client_id: String },
}

/// A verified caller, before any scope is asked for.
pub struct Authenticated {
    pub principal: Principal,
    pub claims: AccessClaims,
}

impl Authenticated {
    /// The token carries `scope` and, for a user, the read model does not
    /// say it was revoked since.
    pub fn holds(&self, scope: &str) -> bool {
        self.claims.has_scope(scope)
            && match &self.principal {
                Principal::User(u) => u.still_holds(scope),
                Principal::Client { .. } => true,
            }
    }
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthenticated("send 'Authorization: Bearer <access token>'".into())
        })?
        .to_str()
        .map_err(|_| {
            ApiError::Unauthenticated("the Authorization header is not valid text".into())
        })?;
    match value.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
            Ok(t.trim().to_owned())
        }
        _ => Err(ApiError::Unauthenticated(
            "the Authorization header must use the Bearer scheme".into(),
        )),
    }
}

async fn authenticate(req: HttpRequest) -> Result<Authenticated, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered")
        .clone();
    let token = bearer(&req)?;
    let claims = match state.tokens.get(&token) {
        Some(c) => c,
        None => {
            let c = verify(&state, &token).await?;
            state.tokens.put(&token, &c);
            c
        }
    };
    if state.revocations.is_revoked(&claims) {
        return Err(ApiError::Unauthenticated(
            "the access token has been revoked".into(),
        ));
    }
    let Ok(id) = claims.sub.parse::<Uuid>() else {
        if claims.sub == claims.client_id {
            let client_id = claims.client_id.clone();
            return Ok(Authenticated {
                principal: Principal::Client { client_id },
                claims,
            });
        }
        return Err(ApiError::Unauthenticated(
            "the access token's subject is neither an account nor its client".into(),
        ));
    };
    let user = with_conn(&state.pool, move |c| {
        store::user(c, id).map_err(ApiError::from)
    })
    .await?;
    match user {
        Some(u) if u.usable() => Ok(Authenticated {
            principal: Principal::User(u),
            claims,
        }),
        Some(u) if u.known() => Err(ApiError::Unauthenticated(
            "this account is deactivated".into(),
        )),
        // Not yet applied from iam.user.v1 (or never created): refused
        // rather than trusted blindly; propagation takes milliseconds.
        _ => Err(ApiError::Unauthenticated(
            "this account is not known to the analytics service (yet); retry shortly".into(),
        )),
    }
}

/// Signature, `typ`, issuer, audience and expiry of an access token.
async fn verify(state: &AppState, token: &str) -> Result<AccessClaims, ApiError> {
    state.access.verify(token).await.map_err(|e| match e {
        TokenError::KeysUnavailable => ApiError::Unavailable(
            "the safekeeper's keys cannot be fetched to verify the access token".into(),
        ),
        TokenError::Expired => ApiError::Unauthenticated(
            "the access token has expired; get a new one from the safekeeper".into(),
        ),
        TokenError::WrongType(_) => ApiError::Unauthenticated(
            "this is not an access token (typ at+jwt); exchange a session token at the safekeeper's POST /v1/authorize".into(),
        ),
        other => ApiError::Unauthenticated(format!("invalid access token: {other}")),
    })
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

/// A user or a client whose token carries `S` (and, for a user, who still
/// holds it).
pub struct Caller<S: Scope> {
    pub principal: Principal,
    _scope: PhantomData<S>,
}

impl<S: Scope + 'static> FromRequest for Caller<S> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let a = authenticate(req).await?;
            if !a.holds(S::NAME) {
                return Err(ApiError::MissingScope(S::NAME));
            }
            Ok(Self {
                principal: a.principal,
                _scope: PhantomData,
            })
        })
    }
}
