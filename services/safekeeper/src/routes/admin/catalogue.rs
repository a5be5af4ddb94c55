//! The admin API's RBAC catalogue (`admin:rbac`): roles and their
//! permissions, permissions and the scopes they carry, and scopes.

use actix_web::{web, HttpRequest, HttpResponse};
use platform::db::with_conn;
use serde::Deserialize;

use crate::{auth::require_persons_scope, error::ApiError, rbac, state::AppState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/admin/roles", web::get().to(list_roles))
        .route("/v1/admin/roles", web::post().to(create_role))
        .route(
            "/v1/admin/roles/{name}/permissions",
            web::put().to(set_role_permissions),
        )
        .route("/v1/admin/roles/{name}", web::delete().to(delete_role))
        .route("/v1/admin/permissions", web::get().to(list_permissions))
        .route("/v1/admin/permissions", web::post().to(create_permission))
        .route(
            "/v1/admin/permissions/{name}",
            web::delete().to(delete_permission),
        )
        .route("/v1/admin/scopes", web::get().to(list_scopes))
        .route("/v1/admin/scopes", web::post().to(create_scope))
        .route("/v1/admin/scopes/{name}", web::delete().to(delete_scope));
}

/// `GET /v1/admin/roles` (`admin:rbac`): roles with permissions and scopes.
async fn list_roles(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:rbac").await?;
    Ok(HttpResponse::Ok()
        .json(with_conn(&state.pool, |c| rbac::list_roles(c).map_err(ApiError::from)).await?))
}

fn check_name(kind: &str, name: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
    {
        return Err(ApiError::BadRequest(format!(
            "{kind} name must be 1 to 64 of A-Z a-z 0-9 . _ - :"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRole {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    permissions: Vec<String>,
}

/// `POST /v1/admin/roles` (`admin:rbac`).
async fn create_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<NewRole>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:rbac").await?;
    let b = body.into_inner();
    check_name("role", &b.name)?;
    with_conn(&state.pool, move |c| {
        rbac::create_role(c, &b.name, &b.description, &b.permissions).map_err(ApiError::from)
    })
    .await?;
    state.outbox.nudge();
    Ok(HttpResponse::Created().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Permissions {
    permissions: Vec<String>,
}

/// `PUT /v1/admin/roles/{name}/permissions` (`admin:rbac`): replaces them;
/// every holder's new scope set is published.
async fn set_role_permissions(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Json<Permissions>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:rbac").await?;
    let (name, perms) = (name.into_inner(), body.into_inner().permissions);
    let n = with_conn(&state.pool, move |c| {
        rbac::set_role_permissions(c, &name, &perms).map_err(ApiError::from)
    })
    .await?;
    state.outbox.nudge();
    Ok(HttpResponse::Ok().json(serde_json::json!({"users_affected": n})))
}

/// `DELETE /v1/admin/roles/{name}` (`admin:rbac`).
async fn delete_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:rbac").await?;
    let name = name.into_inner();
    with_conn(&state.pool, move |c| {
        rbac::delete_role(c, &name).map_err(ApiError::from)
    })
    .await?;
    state.outbox.nudge();
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/admin/permissions` (`admin:rbac`).
async fn list_permissions(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:rbac").await?;
    Ok(HttpResponse::Ok().json(
        with_conn(&state.pool, |c| {
            rbac::list_permissions(c).map_err(ApiError::from)
        })
        .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPermission {
    name: String,
    object: String,
    action: String,
    #[serde(default)]
    scopes: Vec<String>,
}

/// `POST /v1/admin/permissions` (`admin:rbac`): object and action are
/// created when new.
async fn create_permission(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<NewPermission>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:rbac").await?;
    let b = body.into_inner();
    for (k, v) in [
        ("permission", &b.name),
        ("object", &b.object),
        ("action", &b.action),
    ] {
        check_name(k, v)?;
    }
    with_conn(&state.pool, move |c| {
        rbac::create_permission(c, &b.name, &b.object, &b.action, &b.scopes).map_err(ApiError::from)
    })
    .await?;
    Ok(HttpResponse::Created().finish())
}

/// `DELETE /v1/admin/permissions/{name}` (`admin:rbac`).
async fn delete_permission(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:rbac").await?;
    let name = name.into_inner();
    with_conn(&state.pool, move |c| {
        rbac::delete_permission(c, &name).map_err(ApiError::from)
    })
    .await?;
    state.outbox.nudge();
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/admin/scopes` (`admin:rbac`).
async fn list_scopes(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:rbac").await?;
    Ok(HttpResponse::Ok().json(
        with_conn(&state.pool, |c| {
            rbac::list_scopes(c).map_err(ApiError::from)
        })
        .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewScope {
    name: String,
    #[serde(default)]
    description: String,
}

/// `POST /v1/admin/scopes` (`admin:rbac`): names look like `action:object`.
async fn create_scope(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<NewScope>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:rbac").await?;
    let b = body.into_inner();
    let ok = b.name.len() <= 64
        && b.name.split_once(':').is_some_and(|(a, o)| {
            !a.is_empty()
                && !o.is_empty()
                && (a.to_owned() + o)
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c == b'_')
        });
    if !ok {
        return Err(ApiError::BadRequest(
            "a scope looks like action:object (a-z and _)".into(),
        ));
    }
    with_conn(&state.pool, move |c| {
        rbac::create_scope(c, &b.name, &b.description).map_err(ApiError::from)
    })
    .await?;
    Ok(HttpResponse::Created().finish())
}

/// `DELETE /v1/admin/scopes/{name}` (`admin:rbac`).
async fn delete_scope(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:rbac").await?;
    let name = name.into_inner();
    with_conn(&state.pool, move |c| {
        rbac::delete_scope(c, &name).map_err(ApiError::from)
    })
    .await?;
    state.outbox.nudge();
    Ok(HttpResponse::NoContent().finish())
}
