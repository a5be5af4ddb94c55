//! The admin API's users: finding one in the read model (`admin:user`),
//! reading its roles (`admin:user`) and granting or revoking them
//! (`admin:rbac`).

use actix_web::{web, HttpRequest, HttpResponse};
use diesel::prelude::*;
use platform::db::with_conn;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{auth::require_persons_scope, error::ApiError, rbac, state::AppState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/admin/users", web::get().to(find_users))
        .route("/v1/admin/users/{id}/roles", web::get().to(user_roles))
        .route("/v1/admin/users/{id}/roles", web::put().to(set_user_roles))
        .route("/v1/admin/users/{id}/roles", web::post().to(grant_role))
        .route(
            "/v1/admin/users/{id}/roles/{role}",
            web::delete().to(revoke_role),
        );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserQuery {
    username: String,
}

/// `GET /v1/admin/users?username=` (`admin:user`): find a user of the read
/// model (to learn the id to grant roles to).
async fn find_users(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<UserQuery>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:user").await?;
    let name = q.into_inner().username;
    let found: Vec<rbac::User> = with_conn(&state.pool, move |c| {
        use crate::schema::users;
        users::table
            .filter(users::username.eq(name))
            .select(rbac::User::as_select())
            .load(c)
            .map_err(ApiError::from)
    })
    .await?;
    Ok(HttpResponse::Ok().json(found))
}

#[derive(Serialize)]
struct Roles {
    user_id: Uuid,
    roles: Vec<String>,
    scopes: Vec<String>,
}

async fn roles_of(state: &AppState, user: Uuid) -> Result<Roles, ApiError> {
    with_conn(&state.pool, move |c| -> Result<_, ApiError> {
        Ok(Roles {
            user_id: user,
            roles: rbac::user_roles(c, user)?,
            scopes: rbac::user_scopes(c, user)?.into_iter().collect(),
        })
    })
    .await
}

/// `GET /v1/admin/users/{id}/roles` (`admin:user`).
async fn user_roles(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:user").await?;
    Ok(HttpResponse::Ok().json(roles_of(&state, *id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleSet {
    roles: Vec<String>,
}

/// `PUT /v1/admin/users/{id}/roles` (`admin:rbac`, a person): replaces the
/// user's roles.
async fn set_user_roles(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<RoleSet>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:rbac").await?;
    let (user, roles) = (*id, body.into_inner().roles);
    with_conn(&state.pool, move |c| {
        rbac::set_user_roles(c, user, &roles).map_err(ApiError::from)
    })
    .await?;
    state.outbox.nudge();
    Ok(HttpResponse::Ok().json(roles_of(&state, user).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OneRole {
    role: String,
}

/// `POST /v1/admin/users/{id}/roles` (`admin:rbac`, a person): `{role}`
/// granted.
async fn grant_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<OneRole>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:rbac").await?;
    let (user, role) = (*id, body.into_inner().role);
    with_conn(&state.pool, move |c| {
        rbac::grant_role(c, user, &role).map_err(ApiError::from)
    })
    .await?;
    state.outbox.nudge();
    Ok(HttpResponse::Ok().json(roles_of(&state, user).await?))
}

/// `DELETE /v1/admin/users/{id}/roles/{role}` (`admin:rbac`, a person).
async fn revoke_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:rbac").await?;
    let (user, role) = path.into_inner();
    with_conn(&state.pool, move |c| {
        rbac::revoke_role(c, user, &role).map_err(ApiError::from)
    })
    .await?;
    state.outbox.nudge();
    Ok(HttpResponse::Ok().json(roles_of(&state, user).await?))
}
