//! Who is calling: a superuser's session token, checked on every request
//! against the live account (a deactivated or demoted superuser loses
//! access at once, not at token expiry).

use std::{future::Future, pin::Pin};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use platform::jwt::{
    session_still_valid, AccessClaims, SessionClaims, TokenError, ACCESS_TYP, LOGIN_RELAY_SCOPE,
};
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

/// The account behind a valid session token, and the token's claims.
pub struct Caller(pub store::Account, pub SessionClaims);

/// Who may administer accounts: an active superuser's session, a person's
/// access token of the safekeeper carrying `admin:user`, or a service's own
/// token (client credentials, such as the user directory's) carrying
/// `provision:user`, which reaches ordinary accounts only.
pub enum Administrator {
    Superuser(Box<store::Account>),
    /// A person's access token (its `sub` is their account id) with
    /// `admin:user`: everything a superuser may.
    Person {
        user_id: Uuid,
    },
    /// A client's own token with `provision:user`: it creates and imports
    /// accounts, and activates, deactivates and edits ORDINARY ones; it
    /// never touches a superuser.
    Service {
        client_id: String,
        /// The token also carries `login:relay`.
        may_relay: bool,
    },
}

/// What people administer accounts with. Never honoured in a client's own
/// token (client credentials).
pub const ADMIN_USER_SCOPE: &str = "admin:user";
/// What a service (the directory) provisions ordinary accounts with.
pub const PROVISION_USER_SCOPE: &str = "provision:user";

/// Whether an access token speaks for a person (a user `sub`, from a
/// session exchange or the code flow) rather than for a client itself
/// (client credentials: `sub` is the client id). The safekeeper refuses
/// client ids that parse as UUIDs, so the two cannot be confused.
pub fn is_persons_token(claims: &AccessClaims) -> bool {
    claims.sub != claims.client_id && claims.sub.parse::<Uuid>().is_ok()
}

async fn caller(req: HttpRequest) -> Result<(store::Account, SessionClaims), ApiError> {
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
    if !session_still_valid(&claims, account.session_epoch, &account.ended_session_ids()) {
        return Err(ApiError::Unauthenticated(
            "this session has ended (a logout, a new password or a deactivation); log in again"
                .into(),
        ));
    }
    Ok((account, claims))
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { caller(req).await.map(|(a, c)| Caller(a, c)) })
    }
}

impl Administrator {
    /// A service that relays its end users' requests (`login:relay`).
    pub fn may_relay(&self) -> bool {
        matches!(
            self,
            Administrator::Service {
                may_relay: true,
                ..
            }
        )
    }

    /// The account id of a person caller.
    pub fn account_id(&self) -> Option<Uuid> {
        match self {
            Administrator::Superuser(a) => Some(a.id),
            Administrator::Person { user_id } => Some(*user_id),
            Administrator::Service { .. } => None,
        }
    }

    /// Refuses (403) a change of `account` this caller may not make: a
    /// service's token never touches a superuser's account.
    pub fn may_change(&self, account: &store::Account) -> Result<(), ApiError> {
        match self {
            Administrator::Service { client_id, .. } if account.is_superuser => {
                Err(ApiError::Forbidden(format!(
                    "a service's token ({client_id}) cannot change a superuser's account; a superuser must"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// A service's access token of the safekeeper (signature, `typ`, issuer,
/// audience, expiry), not revoked (`oauth.revocation.v1`).
pub async fn service_token(req: &HttpRequest, state: &AppState) -> Result<AccessClaims, ApiError> {
    let token = bearer_token(req)?;
    let claims: AccessClaims = state.access.verify(&token).await.map_err(|e| match e {
        TokenError::KeysUnavailable => ApiError::Unavailable(
            "the safekeeper's keys cannot be fetched right now; try again shortly".into(),
        ),
        other => ApiError::Unauthenticated(format!("invalid access token: {other}")),
    })?;
    if state.revocations.is_revoked(&claims) {
        return Err(ApiError::Unauthenticated(
            "the access token has been revoked".into(),
        ));
    }
    Ok(claims)
}

async fn administrator(req: HttpRequest) -> Result<Administrator, ApiError> {
    let token = bearer_token(&req)?;
    let typ = jsonwebtoken_typ(&token);
    if typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case(ACCESS_TYP))
    {
        let state = req
            .app_data::<web::Data<AppState>>()
            .expect("AppState is registered")
            .clone();
        let claims = service_token(&req, &state).await?;
        let person = is_persons_token(&claims);
        if person && claims.has_scope(ADMIN_USER_SCOPE) {
            let user_id: Uuid = claims
                .sub
                .parse()
                .map_err(|_| ApiError::Unauthenticated("invalid access token subject".into()))?;
            // Checked against the live account, as a session is.
            let live = platform::db::with_conn(&state.pool, move |c| {
                store::by_id(c, user_id).map_err(ApiError::from)
            })
            .await?;
            if !live.is_some_and(|a| a.is_active) {
                return Err(ApiError::AccountInactive);
            }
            return Ok(Administrator::Person { user_id });
        }
        if !claims.has_scope(PROVISION_USER_SCOPE) {
            return Err(ApiError::Forbidden(if claims.has_scope(ADMIN_USER_SCOPE) {
                format!(
                    "{ADMIN_USER_SCOPE} is honoured only in a person's token, never in a client's own token; a service needs {PROVISION_USER_SCOPE}"
                )
            } else {
                format!("the access token lacks {PROVISION_USER_SCOPE} (a service) or {ADMIN_USER_SCOPE} (a person)")
            }));
        }
        return Ok(Administrator::Service {
            may_relay: claims.has_scope(LOGIN_RELAY_SCOPE),
            client_id: claims.client_id,
        });
    }
    let (account, _) = caller(req).await?;
    if !account.is_superuser {
        return Err(ApiError::Forbidden("this needs a superuser".into()));
    }
    Ok(Administrator::Superuser(Box::new(account)))
}

/// The `typ` of a JWT's header, without trusting anything else in it.
fn jsonwebtoken_typ(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?["typ"]
        .as_str()
        .map(str::to_owned)
}

impl FromRequest for Administrator {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(administrator(req))
    }
}
