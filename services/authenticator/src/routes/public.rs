//! Registration, login, the caller's own account, and the JWKS.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use platform::{
    db::{is_unique_violation, with_conn},
    jwt::{SessionClaims, SESSION_TYP},
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::{
    address,
    auth::Caller,
    domain::{parse_name, parse_phone, Email, NewPassword, Username},
    error::ApiError,
    hashing::Verdict,
    state::AppState,
    store::{
        self, AccountView, Change, EndedSession, NewAccount, Taken, EMAIL_UNIQUE, USERNAME_UNIQUE,
    },
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/user", web::post().to(register))
        .route("/v1/login", web::post().to(login))
        .route("/v1/me", web::get().to(me))
        .route("/v1/me/password", web::post().to(change_password))
        .route("/v1/logout", web::post().to(logout))
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
    let per_hour = state.settings.registration_notices_per_hour;
    let stored = with_conn(&state.pool, move |c| {
        store::insert_many(c, &new, per_hour).map_err(ApiError::from)
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
/// Limited per address (a relaying service names its end user's).
async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let reg = Registration::try_from(body.into_inner())?;
    let address = address::of_request(&req, &state).await?;
    throttle_signup(&state, &address).await?;
    let account = create_account(&state, reg, false).await?;
    tracing::info!(account.id = %account.id, "account registered");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/users/{}", account.id)))
        .json(AccountView::from(&account)))
}

/// Counts an account creation from `address`; 429 when it has made too
/// many lately.
pub async fn throttle_signup(state: &AppState, address: &str) -> Result<(), ApiError> {
    let keys = state.throttle.signup_keys(address);
    match state.throttle.reserve(keys).await {
        Ok(_) => Ok(()),
        Err(retry_after_seconds) => {
            tracing::warn!(client.address = %address, "account creation throttled");
            Err(ApiError::TooManyAttempts {
                retry_after_seconds,
            })
        }
    }
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

/// A new session token for `account`, at its current session epoch.
fn issue_session(state: &AppState, account: &store::Account) -> Result<HttpResponse, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let ttl = state.settings.session_ttl.as_secs();
    let claims = SessionClaims {
        iss: state.settings.issuer.clone(),
        sub: account.id.to_string(),
        username: account.username.clone(),
        iat: now,
        exp: now + ttl as i64,
        jti: uuid::Uuid::new_v4().to_string(),
        sep: account.session_epoch,
    };
    let token = state.keys.sign(SESSION_TYP, &claims)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(LoginResponse {
            message: "Login successful",
            session_token: token,
            token_type: "Bearer",
            expires_in: ttl,
        }))
}

/// Checks `username`'s password as a guess from `address`: reserved in
/// the throttle before it is hashed (so concurrent guesses all count),
/// given back when right; a right password at another cost than the
/// configured one is re-hashed afterwards.
async fn check_password(
    state: &web::Data<AppState>,
    username: &str,
    password: &SecretString,
    address: &str,
) -> Result<store::Account, ApiError> {
    let keys = state.throttle.login_keys(username, address);
    let pair = keys[0].name.clone();
    let reservation = state.throttle.reserve(keys).await.map_err(|retry| {
        tracing::warn!(client.address = %address, "login throttled");
        ApiError::TooManyAttempts {
            retry_after_seconds: retry,
        }
    })?;
    let lookup = username.to_owned();
    let account = match with_conn(&state.pool, move |c| {
        store::by_username(c, &lookup).map_err(ApiError::from)
    })
    .await
    {
        Ok(a) => a,
        Err(e) => {
            state.throttle.release(reservation, &[]).await;
            return Err(e);
        }
    };
    let hash = account.as_ref().and_then(|a| a.password_hash.clone());
    let verdict = match state.hasher.verify(password, hash.clone()).await {
        Ok(v) => v,
        // Not checked: not a guess.
        Err(e) => {
            state.throttle.release(reservation, &[]).await;
            return Err(e.into());
        }
    };
    let (Verdict::Right { stale }, Some(account), Some(hash)) = (verdict, account, hash) else {
        return Err(ApiError::InvalidCredentials);
    };
    state.throttle.release(reservation, &[&pair]).await;
    if stale {
        let (state, password, id) = (state.clone(), password.clone(), account.id);
        tokio::spawn(async move {
            let Ok(new) = state.hasher.hash(&password).await else {
                return;
            };
            let done = with_conn(&state.pool, move |c| {
                store::rehash(c, id, &hash, &new).map_err(ApiError::from)
            })
            .await;
            match done {
                Ok(true) => {
                    tracing::info!(account.id = %id, "password re-hashed at the configured cost")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(account.id = %id, error = %platform::problem::chain(&e), "re-hashing a password failed")
                }
            }
        });
    }
    Ok(account)
}

/// Usernames are matched as stored: trimmed, lower case.
fn login_name(username: &str) -> Result<String, ApiError> {
    let username = username.trim().to_ascii_lowercase();
    if username.is_empty() || username.len() > 64 {
        return Err(ApiError::InvalidCredentials);
    }
    Ok(username)
}

/// `POST /v1/login` (public): `{username, password}` to a session token.
/// Unknown users and wrong passwords answer the same 401 after the same
/// bcrypt work; too many failures answer 429 with `Retry-After` (see
/// `ratelimit`); a full hashing queue answers 503 with `Retry-After`.
async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest { username, password } = body.into_inner();
    let username = login_name(&username)?;
    let address = address::of_request(&req, &state).await?;
    let account = check_password(&state, &username, &password, &address).await?;
    if !account.is_active {
        return Err(ApiError::AccountInactive);
    }
    tracing::info!(account.id = %account.id, "login succeeded");
    issue_session(&state, &account)
}

/// `GET /v1/me`: the caller's own account (any valid session token).
async fn me(caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(AccountView::from(&caller.0))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogoutQuery {
    #[serde(default)]
    all: bool,
}

/// `POST /v1/logout[?all=true]` (session): ends this session token, or
/// with `all=true` every session of the account (every device). 204.
/// Every service that accepts session tokens learns it from `iam.user.v1`.
async fn logout(
    caller: Caller,
    state: web::Data<AppState>,
    q: web::Query<LogoutQuery>,
) -> Result<HttpResponse, ApiError> {
    let Caller(account, claims) = caller;
    let change = if q.all {
        Change {
            end_all_sessions: true,
            ..Change::default()
        }
    } else {
        Change {
            end_session: Some(EndedSession {
                jti: claims.jti,
                exp: claims.exp,
            }),
            ..Change::default()
        }
    };
    let id = account.id;
    with_conn(&state.pool, move |c| {
        store::update(c, id, change).map_err(ApiError::from)
    })
    .await?;
    state.outbox.nudge();
    tracing::info!(account.id = %id, all = q.all, "logged out");
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePasswordRequest {
    current_password: SecretString,
    new_password: SecretString,
}

/// `POST /v1/me/password` (session): `{current_password, new_password}`.
/// The current password is checked as a login is (and throttled as one);
/// every earlier session ends, and the answer is a new session token for
/// this device, as `POST /v1/login` gives.
async fn change_password(
    req: HttpRequest,
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let ChangePasswordRequest {
        current_password,
        new_password,
    } = body.into_inner();
    let Caller(account, _) = caller;
    let new_password = NewPassword::parse(new_password, Some(&account.username))?;
    let address = address::connection_address(&req, &state);
    check_password(&state, &account.username, &current_password, &address).await?;
    let hash = state.hasher.hash(new_password.secret()).await?;
    let id = account.id;
    let account = with_conn(&state.pool, move |c| {
        store::update(
            c,
            id,
            Change {
                password_hash: Some(hash),
                ..Change::default()
            },
        )
        .map_err(ApiError::from)
    })
    .await?
    .ok_or_else(|| ApiError::Unauthenticated("the account no longer exists".into()))?;
    state.outbox.nudge();
    tracing::info!(account.id = %id, "password changed by its owner");
    issue_session(&state, &account)
}

/// `GET /.well-known/jwks.json` (public): the keys that verify session tokens.
async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(state.keys.jwks())
}
