//! Account administration (the admin panel of the authenticator's source
//! designs, see docs/architecture.md, as an API). Every route
//! needs a superuser's session token, a person's access token with
//! `admin:user`, or a service's own token with `provision:user`, which
//! never changes a superuser's account (see [`Administrator`]).

use actix_web::{guard, http::StatusCode, web, HttpRequest, HttpResponse, ResponseError};
use futures::future::join_all;
use platform::{db::with_conn, jwt::END_USER_ADDRESS_HEADER, problem::extractors, Problem};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::public::{conflict_or, insert_account, insert_accounts, throttle_signup};
use crate::{
    auth::Administrator,
    domain::{parse_bcrypt_hash, parse_name, parse_phone, Email, NewPassword, Username},
    error::ApiError,
    state::AppState,
    store::{self, AccountView, Change, ListFilter, NewAccount},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/users", web::get().to(list))
        .route("/v1/users", web::post().to(create))
        // Before `/v1/users/{id}`; a larger body than other requests.
        .service(
            web::resource("/v1/users/batch")
                .guard(guard::Post())
                .app_data(extractors::json_config(MAX_BATCH_BYTES))
                .route(web::post().to(create_batch)),
        )
        .route("/v1/users/{id}", web::get().to(get))
        .route("/v1/users/{id}", web::patch().to(update_profile))
        .route("/v1/users/{id}/activate", web::post().to(activate))
        .route("/v1/users/{id}/deactivate", web::post().to(deactivate))
        .route("/v1/users/{id}/password", web::post().to(reset_password));
}

pub const MAX_PAGE: i64 = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    active: Option<bool>,
    username_prefix: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Serialize)]
struct Page {
    items: Vec<AccountView>,
    total: i64,
    limit: i64,
    offset: i64,
}

/// `GET /v1/users?active=&username_prefix=&limit=&offset=` (administrator).
async fn list(
    _admin: Administrator,
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = q.limit.unwrap_or(50);
    let offset = q.offset.unwrap_or(0);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    if offset < 0 {
        return Err(ApiError::BadRequest("offset must not be negative".into()));
    }
    if q.username_prefix.as_ref().is_some_and(|p| p.len() > 64) {
        return Err(ApiError::BadRequest(
            "username_prefix is longer than any username".into(),
        ));
    }
    let filter = ListFilter {
        active: q.active,
        username_prefix: q.username_prefix,
        limit,
        offset,
    };
    let (items, total) = with_conn(&state.pool, move |c| {
        store::list(c, &filter).map_err(ApiError::from)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Page {
        items: items.iter().map(AccountView::from).collect(),
        total,
        limit,
        offset,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    username: String,
    email: String,
    firstname: String,
    lastname: String,
    #[serde(default)]
    phone: String,
    /// A password that meets the policy, or
    password: Option<SecretString>,
    /// a bcrypt hash made elsewhere (import), or neither: an invitation
    /// whose account has no usable password until it is set.
    password_hash: Option<String>,
}

/// The account a creation request asks for, once every rule has passed
/// (a plain password is hashed here).
async fn new_account(state: &AppState, b: CreateRequest) -> Result<NewAccount, ApiError> {
    let username = Username::parse(&b.username)?;
    let password_hash = match (b.password, b.password_hash) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "send password or password_hash, not both".into(),
            ))
        }
        (Some(p), None) => {
            let p = NewPassword::parse(p, Some(username.as_str()))?;
            Some(state.hasher.hash(p.secret()).await?)
        }
        (None, Some(h)) => Some(parse_bcrypt_hash(&h, state.settings.hashing.max_cost)?),
        (None, None) => None,
    };
    Ok(NewAccount {
        username: username.as_str().to_owned(),
        email: Email::parse(&b.email)?.as_str().to_owned(),
        password_hash,
        firstname: parse_name("firstname", &b.firstname)?,
        lastname: parse_name("lastname", &b.lastname)?,
        phone: parse_phone(&b.phone)?,
        is_superuser: false,
    })
}

/// `POST /v1/users` (administrator): create an account with a password, a
/// pre-hashed bcrypt password (import), or none yet (invitation). 201.
async fn create(
    req: HttpRequest,
    admin: Administrator,
    state: web::Data<AppState>,
    body: web::Json<CreateRequest>,
) -> Result<HttpResponse, ApiError> {
    // A service creating an account for an end user (the directory's
    // public `POST /org/create`) names that user's address: counted as a
    // sign-up from it.
    if admin.may_relay() && req.headers().contains_key(END_USER_ADDRESS_HEADER) {
        let address = crate::address::of_request(&req, &state).await?;
        throttle_signup(&state, &address).await?;
    }
    let new = new_account(&state, body.into_inner()).await?;
    let account = insert_account(&state, new).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/v1/users/{}", account.id),
        ))
        .json(AccountView::from(&account)))
}

/// The most accounts one `POST /v1/users/batch` may hold.
pub const MAX_BATCH: usize = 500;
/// Its body limit: that many accounts with long fields.
const MAX_BATCH_BYTES: usize = MAX_BATCH * 2048;

/// What `POST /v1/users` would have answered for one account of a batch.
#[derive(Serialize)]
struct BatchResult {
    /// Its status: 201, 409 (taken) or 400 (invalid).
    status: u16,
    /// `created`, `conflict` or `invalid`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<AccountView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<Problem>,
}

impl From<Result<store::Account, ApiError>> for BatchResult {
    fn from(r: Result<store::Account, ApiError>) -> Self {
        match r {
            Ok(a) => Self {
                status: StatusCode::CREATED.as_u16(),
                outcome: "created",
                account: Some(AccountView::from(&a)),
                problem: None,
            },
            Err(e) => {
                let status = e.status_code();
                Self {
                    status: status.as_u16(),
                    outcome: if status == StatusCode::CONFLICT {
                        "conflict"
                    } else {
                        "invalid"
                    },
                    account: None,
                    problem: Some(e.problem()),
                }
            }
        }
    }
}

#[derive(Serialize)]
struct BatchAnswer {
    results: Vec<BatchResult>,
}

/// `POST /v1/users/batch` (administrator): a JSON array of up to
/// [`MAX_BATCH`] creation requests, each treated as `POST /v1/users` would
/// treat it, as if sent one after the other; the valid new ones are stored
/// with their events in one transaction. 200 with one result per request,
/// in order.
async fn create_batch(
    _admin: Administrator,
    state: web::Data<AppState>,
    body: web::Json<Vec<Value>>,
) -> Result<HttpResponse, ApiError> {
    let items = body.into_inner();
    if items.len() > MAX_BATCH {
        return Err(ApiError::TooLarge {
            detail: format!(
                "a batch may hold at most {MAX_BATCH} accounts; this one holds {}",
                items.len()
            ),
            limit_name: "limit_accounts",
            limit: MAX_BATCH,
        });
    }
    let parsed = join_all(items.into_iter().map(|item| {
        let state = &state;
        async move {
            let request = serde_json::from_value::<CreateRequest>(item)
                .map_err(|e| ApiError::BadRequest(format!("invalid account: {e}")))?;
            new_account(state, request).await
        }
    }))
    .await;
    // Valid accounts go to the store; refused ones keep their answer.
    let mut valid = Vec::new();
    let mut answers = Vec::with_capacity(parsed.len());
    for p in parsed {
        match p {
            Ok(new) => {
                valid.push(new);
                answers.push(None);
            }
            // Our failure (hashing), not the request's: nothing is stored.
            Err(e) if e.status_code().is_server_error() => return Err(e),
            Err(e) => answers.push(Some(Err(e))),
        }
    }
    let mut stored = insert_accounts(&state, valid).await?.into_iter();
    let results = answers
        .into_iter()
        .map(|a| a.or_else(|| stored.next()).map(BatchResult::from))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| anyhow::anyhow!("the store answered fewer accounts than it was given"))?;
    Ok(HttpResponse::Ok().json(BatchAnswer { results }))
}

async fn load(state: &AppState, id: Uuid) -> Result<store::Account, ApiError> {
    with_conn(&state.pool, move |c| {
        store::by_id(c, id).map_err(ApiError::from)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no account {id}")))
}

/// `GET /v1/users/{id}` (administrator).
async fn get(
    _admin: Administrator,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(AccountView::from(&load(&state, *id).await?)))
}

/// Refuses (403) a change the caller may not make to account `id` (a
/// service's token and a superuser), or 404.
async fn may_change(state: &AppState, admin: &Administrator, id: Uuid) -> Result<(), ApiError> {
    if let Administrator::Service { .. } = admin {
        admin.may_change(&load(state, id).await?)?;
    }
    Ok(())
}

async fn apply(state: &AppState, id: Uuid, change: Change) -> Result<HttpResponse, ApiError> {
    let account = with_conn(&state.pool, move |c| {
        store::update(c, id, change).map_err(conflict_or)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no account {id}")))?;
    state.outbox.nudge();
    Ok(HttpResponse::Ok().json(AccountView::from(&account)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileRequest {
    email: Option<String>,
    firstname: Option<String>,
    lastname: Option<String>,
    phone: Option<String>,
}

/// `PATCH /v1/users/{id}` (administrator): change email, names or phone.
async fn update_profile(
    admin: Administrator,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<ProfileRequest>,
) -> Result<HttpResponse, ApiError> {
    may_change(&state, &admin, *id).await?;
    let b = body.into_inner();
    let change = Change {
        email: b
            .email
            .as_deref()
            .map(Email::parse)
            .transpose()?
            .map(|e| e.as_str().to_owned()),
        firstname: b
            .firstname
            .as_deref()
            .map(|v| parse_name("firstname", v))
            .transpose()?,
        lastname: b
            .lastname
            .as_deref()
            .map(|v| parse_name("lastname", v))
            .transpose()?,
        phone: b.phone.as_deref().map(parse_phone).transpose()?,
        ..Change::default()
    };
    apply(&state, *id, change).await
}

/// `POST /v1/users/{id}/activate` (administrator).
async fn activate(
    admin: Administrator,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    may_change(&state, &admin, *id).await?;
    apply(
        &state,
        *id,
        Change {
            is_active: Some(true),
            ..Change::default()
        },
    )
    .await
}

/// `POST /v1/users/{id}/deactivate` (administrator). A superuser cannot lock
/// themselves out.
async fn deactivate(
    admin: Administrator,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    if admin.account_id() == Some(*id) {
        return Err(ApiError::BadRequest(
            "you cannot deactivate your own account".into(),
        ));
    }
    may_change(&state, &admin, *id).await?;
    apply(
        &state,
        *id,
        Change {
            is_active: Some(false),
            ..Change::default()
        },
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordRequest {
    password: SecretString,
}

/// `POST /v1/users/{id}/password` (administrator): set a new password. A
/// service's token sets only an ordinary account's (the directory's
/// organization administrators'), never a superuser's.
async fn reset_password(
    admin: Administrator,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<PasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let account = load(&state, *id).await?;
    admin.may_change(&account)?;
    let password = NewPassword::parse(body.into_inner().password, Some(&account.username))?;
    let hash = state.hasher.hash(password.secret()).await?;
    apply(
        &state,
        *id,
        Change {
            password_hash: Some(hash),
            ..Change::default()
        },
    )
    .await
}
