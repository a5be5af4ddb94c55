//! Account administration for superusers (the seed's admin panel as an
//! API). Every route needs a superuser's session token.

use actix_web::{web, HttpResponse};
use platform::db::with_conn;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::public::conflict_or;
use crate::{
    auth::Superuser,
    domain::{parse_name, parse_phone, Email, NewPassword},
    error::ApiError,
    state::AppState,
    store::{self, AccountView, Change, ListFilter},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/users", web::get().to(list))
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

/// `GET /v1/users?active=&username_prefix=&limit=&offset=` (superuser).
async fn list(
    _admin: Superuser,
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

async fn load(state: &AppState, id: Uuid) -> Result<store::Account, ApiError> {
    with_conn(&state.pool, move |c| {
        store::by_id(c, id).map_err(ApiError::from)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no account {id}")))
}

/// `GET /v1/users/{id}` (superuser).
async fn get(
    _admin: Superuser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(AccountView::from(&load(&state, *id).await?)))
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

/// `PATCH /v1/users/{id}` (superuser): change email, names or phone.
async fn update_profile(
    _admin: Superuser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<ProfileRequest>,
) -> Result<HttpResponse, ApiError> {
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

/// `POST /v1/users/{id}/activate` (superuser).
async fn activate(
    _admin: Superuser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
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

/// `POST /v1/users/{id}/deactivate` (superuser). A superuser cannot lock
/// themselves out.
async fn deactivate(
    admin: Superuser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    if admin.0.id == *id {
        return Err(ApiError::BadRequest(
            "you cannot deactivate your own account".into(),
        ));
    }
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

/// `POST /v1/users/{id}/password` (superuser): set a new password.
async fn reset_password(
    _admin: Superuser,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<PasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let account = load(&state, *id).await?;
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
