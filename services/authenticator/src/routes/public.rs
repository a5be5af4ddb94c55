//! Registration, login, the caller's own account, and the JWKS.

use std::net::IpAddr;

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use platform::{
    db::{is_unique_violation, with_conn},
    jwt::{SessionClaims, SESSION_TYP},
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::{
    auth::Caller,
    domain::{parse_name, parse_phone, Email, NewPassword, Username},
    error::ApiError,
    state::AppState,
    store::{self, AccountView, NewAccount, Taken, EMAIL_UNIQUE, USERNAME_UNIQUE},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/user", web::post().to(register))
        .route("/v1/login", web::post().to(login))
        .route("/v1/me", web::get().to(me))
        .route("/.well-known/jwks.json", web::get().to(jwks));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    username: String,
    password: SecretString,
    email: String,
    firstname: String,
    lastname: String,
    #[serde(default)]
    phone: String,
}

/// A registration that passed every rule.
pub struct Registration {
    pub username: Username,
    pub password: NewPassword,
    pub email: Email,
    pub firstname: String,
    pub lastname: String,
    pub phone: String,
}

impl TryFrom<RegisterRequest> for Registration {
    type Error = ApiError;

    fn try_from(r: RegisterRequest) -> Result<Self, ApiError> {
        let username = Username::parse(&r.username)?;
        Ok(Self {
            password: NewPassword::parse(r.password, Some(username.as_str()))?,
            email: Email::parse(&r.email)?,
            firstname: parse_name("firstname", &r.firstname)?,
            lastname: parse_name("lastname", &r.lastname)?,
            phone: parse_phone(&r.phone)?,
            username,
        })
    }
}

/// Maps unique-constraint violations to the 409 that names the field.
pub fn conflict_or(e: diesel::result::Error) -> ApiError {
    if is_unique_violation(&e, USERNAME_UNIQUE) {
        ApiError::UsernameTaken
    } else if is_unique_violation(&e, EMAIL_UNIQUE) {
        ApiError::EmailTaken
    } else {
        ApiError::Database(e)
    }
}

/// Creates an account from a registration; shared by the API and the
/// bootstrap of the superuser.
pub async fn create_account(
    state: &AppState,
    reg: Registration,
    is_superuser: bool,
) -> Result<store::Account, ApiError> {
    let hash = state.hasher.hash(reg.password.secret()).await?;
    insert_account(
        state,
        NewAccount {
            username: reg.username.as_str().to_owned(),
            email: reg.email.as_str().to_owned(),
            password_hash: Some(hash),
            firstname: reg.firstname,
            lastname: reg.lastname,
            phone: reg.phone,
            is_superuser,
        },
    )
    .await
}

/// The 409 of an account whose `field` is taken.
pub fn taken(field: Taken) -> ApiError {
    match field {
        Taken::Username => ApiError::UsernameTaken,
        Taken::Email => ApiError::EmailTaken,
    }
}

/// Stores new accounts (and their events) in one transaction: one answer
/// per account, in order; a duplicate answers its 409.
pub async fn insert_accounts(
    state: &AppState,
    new: Vec<NewAccount>,
) -> Result<Vec<Result<store::Account, ApiError>>, ApiError> {
    let stored = with_conn(&state.pool, move |c| {
        store::insert_many(c, &new).map_err(ApiError::from)
    })
    .await?;
    if stored.iter().any(Result::is_ok) {
        state.outbox.nudge();
    }
    Ok(stored.into_iter().map(|r| r.map_err(taken)).collect())
}

/// Stores a new account (and its event), mapping duplicates to 409.
pub async fn insert_account(state: &AppState, new: NewAccount) -> Result<store::Account, ApiError> {
    insert_accounts(state, vec![new])
        .await?
        .pop()
        .unwrap_or_else(|| {
            Err(ApiError::Internal(anyhow::anyhow!(
                "no answer for the account"
            )))
        })
}

/// `POST /v1/user`: register an account (public). 201 with the account.
async fn register(
    state: web::Data<AppState>,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let reg = Registration::try_from(body.into_inner())?;
    let account = create_account(&state, reg, false).await?;
    tracing::info!(account.id = %account.id, "account registered");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/users/{}", account.id)))
        .json(AccountView::from(&account)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: SecretString,
}

#[derive(Serialize)]
struct LoginResponse {
    message: &'static str,
    session_token: String,
    token_type: &'static str,
    expires_in: u64,
}

fn client_address(req: &HttpRequest, trust_forwarded_for: bool) -> String {
    if trust_forwarded_for {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        if let Some(ip) = forwarded {
            return ip.to_string();
        }
    }
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// `POST /v1/login` (public): `{username, password}` to a session token.
/// Unknown users and wrong passwords answer the same 401 after the same
/// bcrypt work; repeated failures answer 429 with `Retry-After`.
async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest { username, password } = body.into_inner();
    let username = username.trim().to_ascii_lowercase();
    if username.is_empty() || username.len() > 64 {
        return Err(ApiError::InvalidCredentials);
    }
    let user_key = format!("u:{username}");
    let addr_key = format!(
        "a:{}",
        client_address(&req, state.settings.trust_forwarded_for)
    );
    for key in [&user_key, &addr_key] {
        let limiter = if key.starts_with("u:") {
            &state.user_failures
        } else {
            &state.address_failures
        };
        if let Some(retry_after_seconds) = limiter.blocked_for(key) {
            tracing::warn!(login.throttled = %key, "login throttled");
            return Err(ApiError::TooManyAttempts {
                retry_after_seconds,
            });
        }
    }
    let lookup = username.clone();
    let account = with_conn(&state.pool, move |c| {
        store::by_username(c, &lookup).map_err(ApiError::from)
    })
    .await?;
    let hash = account.as_ref().and_then(|a| a.password_hash.clone());
    if !state.hasher.verify(&password, hash).await? {
        state.user_failures.record_failure(&user_key);
        state.address_failures.record_failure(&addr_key);
        return Err(ApiError::InvalidCredentials);
    }
    let account = account.expect("a verified password has an account");
    state.user_failures.clear(&user_key);
    if !account.is_active {
        return Err(ApiError::AccountInactive);
    }
    let now = chrono::Utc::now().timestamp();
    let ttl = state.settings.session_ttl.as_secs();
    let claims = SessionClaims {
        iss: state.settings.issuer.clone(),
        sub: account.id.to_string(),
        username: account.username.clone(),
        iat: now,
        exp: now + ttl as i64,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    let token = state.keys.sign(SESSION_TYP, &claims)?;
    tracing::info!(account.id = %account.id, "login succeeded");
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(LoginResponse {
            message: "Login successful",
            session_token: token,
            token_type: "Bearer",
            expires_in: ttl,
        }))
}

/// `GET /v1/me`: the caller's own account (any valid session token).
async fn me(caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(AccountView::from(&caller.0))
}

/// `GET /.well-known/jwks.json` (public): the keys that verify session tokens.
async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(state.keys.jwks())
}
