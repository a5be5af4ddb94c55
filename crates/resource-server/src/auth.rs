//! Who is calling, and whether they may: an access token of the safekeeper
//! (verified locally against its cached JWKS: algorithm, `typ: at+jwt`,
//! issuer, audience, expiry; a token verified before is taken from the
//! service's [`TokenCache`]), then the users read model. A user the read
//! model marks inactive is refused with 401 from the moment the event is
//! applied; a scope the user no longer holds is refused with 403 even if
//! the token still carries it. A token the safekeeper revoked (by itself,
//! with its grant, its client or its user: `oauth.revocation.v1`) is
//! refused with 401 on every request.
//!
//! A token of a client (client credentials: `sub` is the client id) has no
//! user behind it: [`Caller`] accepts it when it carries the scope,
//! [`UserCaller`] never does.

use std::{future::Future, marker::PhantomData, pin::Pin};

use actix_web::{dev::Payload, http::StatusCode, web, FromRequest, HttpRequest, HttpResponse};
use platform::{
    db::{PgPool, StoreError},
    jwt::{AccessClaims, TokenError},
    Problem,
};
use uuid::Uuid;

use crate::Scope;

/// A row of a users read model, as far as authentication asks of it.
pub trait ReadModelUser: Clone + 'static {
    /// The account's id (a token's `sub`).
    fn id(&self) -> Uuid;
    /// Its account event has been applied.
    fn known(&self) -> bool;
    /// Known and active: may call.
    fn usable(&self) -> bool;
    /// Whether the user still holds `scope`, as far as the read model
    /// knows (no grant event yet: the token's word stands).
    fn still_holds(&self, scope: &str) -> bool;
}

pub use platform::{
    jwt::{TokenCache, Verifier},
    revocation::Revocations,
};

/// A service's state as the extractors need it: registered as
/// `web::Data<Self>` in the app. Implemented with [`resource_server!`](crate::resource_server).
pub trait ResourceServer: 'static {
    /// Its users read model's row.
    type User: ReadModelUser;
    /// The service's name in messages ("not known to the task service").
    const SERVICE: &'static str;
    /// The safekeeper's access tokens (remote JWKS, cached).
    fn access(&self) -> &Verifier;
    /// Access tokens already verified, with their claims.
    fn tokens(&self) -> &TokenCache;
    /// Revoked tokens, grants, clients and users.
    fn revocations(&self) -> &Revocations;
    /// The read model's row of `id`, if any (from a cache where the
    /// service keeps one).
    fn load_user(&self, id: Uuid) -> impl Future<Output = Result<Option<Self::User>, AuthError>>;
}

/// Declares a service's state a resource server: implements
/// [`ResourceServer`] for it (it has the fields `access` ([`Verifier`]),
/// `tokens` ([`TokenCache`]) and `revocations` ([`Revocations`])) and
/// names the extractors for it where it is invoked (`Principal`,
/// `Authenticated`, `Caller<S>`, `UserCaller<S>`):
///
/// - `resource_server!(AppState, "accounting");` with the shared
///   [`users::User`](crate::users::User), read through the field `pool`;
/// - `resource_server!(AppState, "task", store::User, |state, id|
///   cached_user(state, id));` with the service's own row type and a
///   future that loads it.
#[macro_export]
macro_rules! resource_server {
    ($state:ty, $service:literal) => {
        $crate::resource_server!($state, $service, $crate::users::User, |state, id| {
            $crate::auth::load_from_pool(&state.pool, id)
        });
    };
    ($state:ty, $service:literal, $user:ty, |$s:ident, $id:ident| $load:expr) => {
        /// Who stands behind a verified token.
        pub type Principal = $crate::auth::Principal<$user>;
        /// A verified caller, before any scope is asked for.
        pub type Authenticated = $crate::auth::Authenticated<$state>;
        /// A user or a client whose token carries `S` (and, for a user,
        /// who still holds it).
        pub type Caller<S> = $crate::auth::Caller<S, $state>;
        /// A user whose token carries `S` and who still holds it.
        pub type UserCaller<S> = $crate::auth::UserCaller<S, $state>;

        impl $crate::auth::ResourceServer for $state {
            type User = $user;
            const SERVICE: &'static str = $service;

            fn access(&self) -> &$crate::auth::Verifier {
                &self.access
            }

            fn tokens(&self) -> &$crate::auth::TokenCache {
                &self.tokens
            }

            fn revocations(&self) -> &$crate::auth::Revocations {
                &self.revocations
            }

            fn load_user(
                &self,
                id: ::uuid::Uuid,
            ) -> impl ::std::future::Future<
                Output = ::std::result::Result<Option<$user>, $crate::auth::AuthError>,
            > {
                let ($s, $id) = (self, id);
                $load
            }
        }
    };
}

/// Why a request was refused, as a problem document.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// 401: no usable token, or no usable account behind it.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: the token, or its user, lacks the scope.
    #[error("missing scope {0}")]
    MissingScope(&'static str),
    /// 403: allowed to no caller of this kind.
    #[error("{0}")]
    Forbidden(String),
    /// 503: the safekeeper's keys cannot be fetched.
    #[error("{0}")]
    Unavailable(String),
    /// The users read model could not be read: the problem
    /// `platform::db` makes of it (a 503 for a pool timeout, else a 500).
    #[error("{0}")]
    ReadModel(Box<Problem>),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::ReadModel(Box::new(Problem::from(&e)))
    }
}

impl From<diesel::result::Error> for AuthError {
    fn from(e: diesel::result::Error) -> Self {
        AuthError::ReadModel(Box::new(platform::db::database_problem(&e)))
    }
}

/// The problem of a missing scope, for the services' own errors too.
pub fn missing_scope(scope: &str) -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "missing-scopes",
        "Scopes not granted",
    )
    .with_detail(format!(
        "this needs an access token carrying {scope}, held by its user"
    ))
    .with("missing_scopes", [scope])
}

impl AuthError {
    /// Its problem document.
    pub fn problem(&self) -> Problem {
        match self {
            AuthError::Unauthenticated(d) => Problem::unauthorized(d.clone()),
            AuthError::MissingScope(s) => missing_scope(s),
            AuthError::Forbidden(d) => Problem::forbidden(d.clone()),
            AuthError::Unavailable(d) => Problem::unavailable(d.clone()),
            AuthError::ReadModel(p) => Problem::clone(p),
        }
    }
}

impl actix_web::ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        self.problem().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        self.problem().error_response()
    }
}

/// The users read model's row of `id`, read through the pool: the
/// [`ResourceServer::load_user`] of a service that keeps no cache.
pub async fn load_from_pool(
    pool: &PgPool,
    id: Uuid,
) -> Result<Option<crate::users::User>, AuthError> {
    platform::db::with_conn(pool, move |c| {
        crate::users::user(c, id).map_err(AuthError::from)
    })
    .await
}

/// Who stands behind a verified token.
pub enum Principal<U> {
    /// A user of the read model, known and active.
    User(U),
    /// A client acting for itself (client credentials).
    Client { client_id: String },
}

/// A verified caller, before any scope is asked for.
pub struct Authenticated<St: ResourceServer> {
    pub principal: Principal<St::User>,
    pub claims: AccessClaims,
}

impl<St: ResourceServer> Authenticated<St> {
    /// The token carries `scope` and, for a user, the read model does not
    /// say it was revoked since.
    pub fn holds(&self, scope: &str) -> bool {
        self.claims.has_scope(scope)
            && match &self.principal {
                Principal::User(u) => u.still_holds(scope),
                Principal::Client { .. } => true,
            }
    }

    /// The user, if a user is calling.
    pub fn user(&self) -> Option<&St::User> {
        match &self.principal {
            Principal::User(u) => Some(u),
            Principal::Client { .. } => None,
        }
    }

    /// The caller's account, for a user.
    pub fn account(&self) -> Option<Uuid> {
        self.user().map(ReadModelUser::id)
    }
}

fn bearer(req: &HttpRequest) -> Result<String, AuthError> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            AuthError::Unauthenticated("send 'Authorization: Bearer <access token>'".into())
        })?
        .to_str()
        .map_err(|_| {
            AuthError::Unauthenticated("the Authorization header is not valid text".into())
        })?;
    match value.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
            Ok(t.trim().to_owned())
        }
        _ => Err(AuthError::Unauthenticated(
            "the Authorization header must use the Bearer scheme".into(),
        )),
    }
}

async fn authenticate<St: ResourceServer>(
    req: HttpRequest,
) -> Result<Authenticated<St>, AuthError> {
    let Some(state) = req.app_data::<web::Data<St>>().cloned() else {
        return Err(AuthError::Unavailable(
            "the service's state is not registered".into(),
        ));
    };
    let token = bearer(&req)?;
    let claims = match state.tokens().get(&token) {
        Some(c) => c,
        None => {
            let c = verify(state.access(), &token).await?;
            state.tokens().put(&token, &c);
            c
        }
    };
    if state.revocations().is_revoked(&claims) {
        return Err(AuthError::Unauthenticated(
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
        return Err(AuthError::Unauthenticated(
            "the access token's subject is neither an account nor its client".into(),
        ));
    };
    match state.load_user(id).await? {
        Some(u) if u.usable() => Ok(Authenticated {
            principal: Principal::User(u),
            claims,
        }),
        Some(u) if u.known() => Err(AuthError::Unauthenticated(
            "this account is deactivated".into(),
        )),
        // Not yet applied from iam.user.v1 (or never created): refused
        // rather than trusted blindly; propagation takes milliseconds.
        _ => Err(AuthError::Unauthenticated(format!(
            "this account is not known to the {} service (yet); retry shortly",
            St::SERVICE
        ))),
    }
}

/// Signature, `typ`, issuer, audience and expiry of an access token.
async fn verify(access: &Verifier, token: &str) -> Result<AccessClaims, AuthError> {
    access.verify(token).await.map_err(|e| match e {
        TokenError::KeysUnavailable => AuthError::Unavailable(
            "the safekeeper's keys cannot be fetched to verify the access token".into(),
        ),
        TokenError::Expired => AuthError::Unauthenticated(
            "the access token has expired; get a new one from the safekeeper".into(),
        ),
        TokenError::WrongType(_) => AuthError::Unauthenticated(
            "this is not an access token (typ at+jwt); exchange a session token at the safekeeper's POST /v1/authorize".into(),
        ),
        other => AuthError::Unauthenticated(format!("invalid access token: {other}")),
    })
}

/// Authenticates and asks for `S`.
async fn with_scope<St: ResourceServer, S: Scope>(
    req: HttpRequest,
) -> Result<Principal<St::User>, AuthError> {
    let a = authenticate::<St>(req).await?;
    if !a.holds(S::NAME) {
        return Err(AuthError::MissingScope(S::NAME));
    }
    Ok(a.principal)
}

type Extracted<T> = Pin<Box<dyn Future<Output = Result<T, AuthError>>>>;

impl<St: ResourceServer> FromRequest for Authenticated<St> {
    type Error = AuthError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

/// A user or a client whose token carries `S` (and, for a user, who still
/// holds it).
pub struct Caller<S: Scope, St: ResourceServer> {
    pub principal: Principal<St::User>,
    _scope: PhantomData<S>,
}

async fn caller<S: Scope, St: ResourceServer>(
    req: HttpRequest,
) -> Result<Caller<S, St>, AuthError> {
    let principal = with_scope::<St, S>(req).await?;
    Ok(Caller {
        principal,
        _scope: PhantomData,
    })
}

impl<S: Scope + 'static, St: ResourceServer> FromRequest for Caller<S, St> {
    type Error = AuthError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(caller(req.clone()))
    }
}

/// A user whose token carries `S` and who still holds it; a client's
/// token is refused with 403.
pub struct UserCaller<S: Scope, St: ResourceServer> {
    pub user: St::User,
    _scope: PhantomData<S>,
}

async fn user_caller<S: Scope, St: ResourceServer>(
    req: HttpRequest,
) -> Result<UserCaller<S, St>, AuthError> {
    match with_scope::<St, S>(req).await? {
        Principal::User(user) => Ok(UserCaller {
            user,
            _scope: PhantomData,
        }),
        Principal::Client { .. } => Err(AuthError::Forbidden(format!(
            "{} needs a user's access token, not a client's",
            S::NAME
        ))),
    }
}

impl<S: Scope + 'static, St: ResourceServer> FromRequest for UserCaller<S, St> {
    type Error = AuthError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(user_caller(req.clone()))
    }
}
