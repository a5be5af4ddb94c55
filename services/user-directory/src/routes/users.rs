//! Users and memberships of the caller's organization, and bulk import.
//! Every route needs an organization admin's token and sees that
//! organization only.

use std::sync::Arc;

use actix_web::{
    http::header,
    web::{self, Bytes},
    HttpRequest, HttpResponse,
};
use platform::{coherent::Lookup, db::with_conn, server::json_bytes};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::read_body;
use crate::{
    auth::{still_admin, OrgAdmin, OrgToken},
    changes,
    domain::{parse_environment_role, parse_name, parse_role, Email, UserFields},
    error::ApiError,
    import::{self, Summary},
    members::Member,
    saga::{self, Created},
    state::AppState,
    store::{self, changes::ChangeRequest, UserFilter, UserView},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/users", web::post().to(create))
        .route("/v1/users", web::get().to(list))
        .route("/v1/users/import", web::post().to(import_file))
        .route("/v1/users/{id}", web::get().to(get))
        .route("/v1/users/{id}", web::patch().to(update))
        .route("/v1/users/{id}", web::delete().to(remove))
        .route("/v1/users/{id}/role", web::put().to(set_role))
        .route("/v1/imports/{id}", web::get().to(import_job));
}

/// Refuses new members (409) for an organization WorkOS deleted: it stays,
/// with its members, until its admin deletes it, but the provider would
/// make no membership in it.
async fn open_at_provider(state: &AppState, organization: &str) -> Result<(), ApiError> {
    let Some(workos_id) = state
        .config
        .current()
        .organization(organization)
        .and_then(|e| e.workos_id.clone())
    else {
        return Ok(());
    };
    let deleted = with_conn(&state.pool, move |c| {
        store::org_events::deleted_at_provider(c, &workos_id).map_err(ApiError::from)
    })
    .await?;
    if deleted {
        return Err(ApiError::OrganizationDeletedAtProvider);
    }
    Ok(())
}

/// `POST /v1/users` (an organization admin, for their organization):
/// `{email, first_name, last_name, organization, role}`; role and
/// organization from the directory config. Creates the account at the
/// provider (an invitation: no password until one is set) and the
/// membership. 201; 409 for a taken email.
async fn create(
    admin: OrgAdmin,
    state: web::Data<AppState>,
    body: web::Json<UserFields>,
) -> Result<HttpResponse, ApiError> {
    let config = state.config.current();
    let new = body.into_inner().parse(&config)?;
    admin.must_own(&new.organization)?;
    open_at_provider(&state, &admin.organization.name).await?;
    let entry = config
        .organization(&new.organization)
        .cloned()
        .expect("parse checked it");
    match saga::create_user(&state, new, &admin.organization, &entry).await? {
        Created::New(u, m) => {
            tracing::info!(user.id = %u.id, "user created");
            Ok(HttpResponse::Created()
                .insert_header((header::LOCATION, format!("/v1/users/{}", u.id)))
                .json(UserView::new(&u, &m, &admin.organization.name)))
        }
        Created::Exists(_) => Err(ApiError::EmailTaken),
    }
}

/// `GET /v1/users/{id}` (an organization admin): a member of their
/// organization, from the directory's database (the provider is not
/// called). 404 for anyone else. The organization and its admin are
/// checked in the same query as the read.
async fn get(
    token: OrgToken,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (org, user) = (token.0.org, id.into_inner());
    let generation = match state.members.lookup(&user, &org) {
        Lookup::Hit(m) => {
            still_admin(&token.0, Some(m.organization.clone()))?;
            return Ok(json_bytes(m.body.clone()));
        }
        Lookup::Miss(g) => Some(g),
        Lookup::Bypass => None,
    };
    let (organization, found) = with_conn(&state.pool, move |c| {
        store::organization_and_member(c, org, user).map_err(ApiError::from)
    })
    .await?
    .map_or((None, None), |(o, m)| (Some(o), m));
    let organization = still_admin(&token.0, organization)?;
    let (u, m) =
        found.ok_or_else(|| ApiError::NotFound(format!("no user {user} in your organization")))?;
    let body = Bytes::from(
        serde_json::to_vec(&UserView::new(&u, &m, &organization.name))
            .map_err(|e| ApiError::Internal(e.into()))?,
    );
    if let Some(g) = generation {
        let entry = Member {
            organization,
            body: body.clone(),
        };
        state.members.fill(user, org, Arc::new(entry), g);
    }
    Ok(json_bytes(body))
}

/// The body of `PATCH /v1/users/{id}`: at least one field.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    environment_role: Option<String>,
}

/// `PATCH /v1/users/{id}` (an organization admin): a member's email,
/// names and environment role, at the provider first, then here, with the
/// membership's event. 404 for anyone not a member of the caller's
/// organization, 409 for an email taken (regardless of case), 400 for bad
/// input or an environment role not in the file; nothing changes then.
async fn update(
    admin: OrgAdmin,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<UserPatch>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let config = state.config.current();
    if body.email.is_none()
        && body.first_name.is_none()
        && body.last_name.is_none()
        && body.environment_role.is_none()
    {
        return Err(ApiError::BadRequest(
            "give at least one of email, first_name, last_name, environment_role".into(),
        ));
    }
    let req = ChangeRequest {
        kind: "update",
        email: body
            .email
            .map(|e| Email::parse(&e).map(|e| e.as_str().to_owned()))
            .transpose()?,
        first_name: body
            .first_name
            .map(|n| parse_name("first_name", &n))
            .transpose()?,
        last_name: body
            .last_name
            .map(|n| parse_name("last_name", &n))
            .transpose()?,
        environment_role: body
            .environment_role
            .map(|r| parse_environment_role(&config, &r))
            .transpose()?,
        role: None,
    };
    change(&admin, &state, id.into_inner(), req).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: String,
}

/// `PUT /v1/users/{id}/role` (an organization admin): a member's
/// organization role, one of the file's (400 otherwise); with WorkOS, the
/// membership's `role_slug` there first.
async fn set_role(
    admin: OrgAdmin,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<RoleBody>,
) -> Result<HttpResponse, ApiError> {
    let role = parse_role(&state.config.current(), &body.role)?;
    let req = ChangeRequest {
        kind: "role",
        role: Some(role),
        ..ChangeRequest::default()
    };
    change(&admin, &state, id.into_inner(), req).await
}

/// `DELETE /v1/users/{id}` (an organization admin): removes a member: the
/// account is deactivated (authenticator) or deleted (WorkOS), then the
/// membership is deleted here and published. 204. Creating the same
/// email later takes the account back (authenticator).
async fn remove(
    admin: OrgAdmin,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let req = ChangeRequest {
        kind: "remove",
        ..ChangeRequest::default()
    };
    changes::change_member(&state, admin.organization.id, id, req).await?;
    tracing::info!(user.id = %id, "member removed");
    Ok(HttpResponse::NoContent().finish())
}

async fn change(
    admin: &OrgAdmin,
    state: &AppState,
    id: Uuid,
    req: ChangeRequest,
) -> Result<HttpResponse, ApiError> {
    let (u, m) = changes::change_member(state, admin.organization.id, id, req).await?;
    Ok(HttpResponse::Ok().json(UserView::new(&u, &m, &admin.organization.name)))
}

pub const MAX_PAGE: i64 = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    email: Option<String>,
    organization: Option<String>,
    role: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// `GET /v1/users?email=&organization=&role=&limit=&offset=` (an
/// organization admin): members of their organization, in the order they joined.
async fn list(
    admin: OrgAdmin,
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    if let Some(o) = &q.organization {
        admin.must_own(o)?;
    }
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
    let filter = UserFilter {
        email: q.email.map(|e| e.trim().to_owned()),
        role: q.role.map(|r| r.trim().to_owned()),
        limit,
        offset,
    };
    let org = admin.organization.id;
    let (items, total) = with_conn(&state.pool, move |c| {
        store::members(c, org, &filter).map_err(ApiError::from)
    })
    .await?;
    let name = &admin.organization.name;
    Ok(HttpResponse::Ok().json(json!({
        "items": items.iter().map(|(u, m)| UserView::new(u, m, name)).collect::<Vec<_>>(),
        "total": total,
        "limit": limit,
        "offset": offset,
    })))
}

/// `POST /v1/users/import` (an organization admin): a CSV file
/// (`Content-Type: text/csv`) or a JSON array. 200 with each row's outcome,
/// or, for files above `IMPORT_SYNC_ROWS` rows, 202 with a job to follow
/// at `GET /v1/imports/{id}`. 413 beyond the size or row limit.
async fn import_file(
    admin: OrgAdmin,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    open_at_provider(&state, &admin.organization.name).await?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let csv = match content_type.as_str() {
        "text/csv" | "application/csv" => true,
        "application/json" => false,
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "send the file as text/csv or a JSON array as application/json".into(),
            ))
        }
    };
    let limits = state.settings.import.clone();
    let body = read_body(payload, limits.max_bytes).await?;
    let rows = if csv {
        import::parse_csv(&body, limits.max_rows)?
    } else {
        import::parse_json(&body, limits.max_rows)?
    };
    if rows.is_empty() {
        return Err(ApiError::BadRequest("the file holds no rows".into()));
    }
    if rows.len() <= limits.sync_rows {
        let mut seen = Default::default();
        let outcomes = import::run_rows(&state, &admin.organization, &rows, &mut seen).await;
        state.outbox.nudge();
        return Ok(HttpResponse::Ok().json(Summary::of(rows.len(), outcomes)));
    }
    let (org, total) = (admin.organization.id, rows.len() as i32);
    let input = serde_json::to_value(&rows).map_err(anyhow::Error::from)?;
    let job = with_conn(&state.pool, move |c| {
        store::create_job(c, org, total, &input).map_err(ApiError::from)
    })
    .await?;
    let id = job.id;
    let s = state.clone();
    tokio::spawn(async move { import::run_job(&s, job).await });
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/v1/imports/{id}")))
        .json(json!({"id": id, "status": "running", "total": total, "processed": 0})))
}

/// `GET /v1/imports/{id}` (the organization admin who owns the job): its
/// progress and, as rows finish, their outcomes.
async fn import_job(
    admin: OrgAdmin,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = (admin.organization.id, id.into_inner());
    let job = with_conn(&state.pool, move |c| {
        store::job(c, org, id).map_err(ApiError::from)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no import {id} in your organization")))?;
    Ok(HttpResponse::Ok().json(job))
}
