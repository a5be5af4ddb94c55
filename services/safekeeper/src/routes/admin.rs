//! The admin API: clients (`admin:client`), roles, permissions, scopes and
//! user-role grants (`admin:rbac`), finding users and reading their roles
//! (`admin:user`). Every route needs a PERSON's access token (from a
//! session, not client credentials) carrying its scope, held by a user who
//! still has it: a client's own token never administers anything here.

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::Method,
    middleware::Next,
    web, HttpRequest, HttpResponse,
};
use diesel::prelude::*;
use platform::db::with_conn;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    auth::require_persons_scope,
    crypto,
    error::ApiError,
    grants::{self, Client, ClientChange, NewClient},
    rbac,
    state::AppState,
};

/// Middleware: every successful administrative change empties this
/// replica's client cache, whatever it touched (a client, a scope, a role).
pub async fn forget_cached_clients(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let changes = req.method() != Method::GET && req.path().starts_with("/v1/admin/");
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    if changes && res.status().is_success() {
        if let Some(state) = state {
            state.clients.clear();
        }
    }
    Ok(res)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/admin/clients", web::get().to(list_clients))
        .route("/v1/admin/clients", web::post().to(create_client))
        .route("/v1/admin/clients/{id}", web::get().to(get_client))
        .route("/v1/admin/clients/{id}", web::patch().to(update_client))
        .route("/v1/admin/clients/{id}", web::delete().to(delete_client))
        .route("/v1/admin/roles", web::get().to(list_roles))
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
        .route("/v1/admin/scopes/{name}", web::delete().to(delete_scope))
        .route("/v1/admin/users", web::get().to(find_users))
        .route("/v1/admin/users/{id}/roles", web::get().to(user_roles))
        .route("/v1/admin/users/{id}/roles", web::put().to(set_user_roles))
        .route("/v1/admin/users/{id}/roles", web::post().to(grant_role))
        .route(
            "/v1/admin/users/{id}/roles/{role}",
            web::delete().to(revoke_role),
        );
}

const GRANT_TYPES: [&str; 3] = ["authorization_code", "refresh_token", "client_credentials"];

#[derive(Serialize)]
struct ClientView {
    client_id: String,
    name: String,
    public: bool,
    first_party: bool,
    redirect_uris: Vec<String>,
    grant_types: Vec<String>,
    scopes: Vec<String>,
    /// The code flow needs PKCE (default `true`; only a confidential
    /// client may be let off).
    pkce_required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

fn view(c: Client, scopes: Vec<String>, secret: Option<String>) -> ClientView {
    ClientView {
        client_id: c.id,
        name: c.name,
        public: c.is_public,
        first_party: c.first_party,
        redirect_uris: c.redirect_uris,
        grant_types: c.grant_types,
        scopes,
        pkce_required: c.pkce_required,
        client_secret: secret,
    }
}

/// RFC 9700 2.1: exact URIs, https, or http on a loopback host (RFC 8252).
fn check_redirect_uris(uris: &[String]) -> Result<(), ApiError> {
    for u in uris {
        let url = Url::parse(u).map_err(|_| {
            ApiError::BadRequest(format!("redirect URI {u:?} is not an absolute URL"))
        })?;
        let loopback = matches!(
            url.host_str(),
            Some("127.0.0.1") | Some("[::1]") | Some("localhost")
        );
        if url.fragment().is_some() {
            return Err(ApiError::BadRequest(format!(
                "redirect URI {u:?} must not have a fragment"
            )));
        }
        if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
            return Err(ApiError::BadRequest(format!(
                "redirect URI {u:?} must use https (http only on a loopback host)"
            )));
        }
    }
    Ok(())
}

fn check_grant_types(types: &[String], public: bool) -> Result<(), ApiError> {
    if let Some(t) = types.iter().find(|t| !GRANT_TYPES.contains(&t.as_str())) {
        return Err(ApiError::BadRequest(format!("unknown grant type {t:?}")));
    }
    if public && types.iter().any(|t| t == "client_credentials") {
        return Err(ApiError::BadRequest(
            "a public client cannot use client_credentials".into(),
        ));
    }
    Ok(())
}

async fn client_view(
    state: &AppState,
    id: String,
    secret: Option<String>,
) -> Result<ClientView, ApiError> {
    with_conn(&state.pool, move |c| -> Result<_, ApiError> {
        let client = grants::client(c, &id)?
            .ok_or_else(|| ApiError::NotFound(format!("no client {id:?}")))?;
        let scopes = rbac::client_scopes(c, &id)?.into_iter().collect();
        Ok(view(client, scopes, secret))
    })
    .await
}

/// `GET /v1/admin/clients` (`admin:client`).
async fn list_clients(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:client").await?;
    let all = with_conn(&state.pool, |c| -> Result<_, ApiError> {
        let mut out = Vec::new();
        for client in grants::clients(c)? {
            let scopes = rbac::client_scopes(c, &client.id)?.into_iter().collect();
            out.push(view(client, scopes, None));
        }
        Ok(out)
    })
    .await?;
    Ok(HttpResponse::Ok().json(all))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClientRequest {
    client_id: String,
    name: String,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    first_party: bool,
    #[serde(default)]
    redirect_uris: Vec<String>,
    grant_types: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    /// Optional for confidential clients: one is generated otherwise.
    client_secret: Option<String>,
    /// `false` lets a confidential client use the code flow without PKCE.
    #[serde(default = "yes")]
    pkce_required: bool,
}

fn yes() -> bool {
    true
}

/// RFC 9700 2.1.1: a public client cannot prove who redeems its codes
/// otherwise, so it can never be let off PKCE.
fn check_pkce_opt_out(public: bool, pkce_required: bool) -> Result<(), ApiError> {
    if public && !pkce_required {
        return Err(ApiError::BadRequest(
            "a public client always needs PKCE: pkce_required=false is for confidential clients only"
                .into(),
        ));
    }
    Ok(())
}

/// `POST /v1/admin/clients` (`admin:client`): 201 with the client; a
/// confidential client's secret is shown this once.
async fn create_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<NewClientRequest>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:client").await?;
    let b = body.into_inner();
    if b.name.trim().is_empty() || b.name.len() > 100 {
        return Err(ApiError::BadRequest(
            "name must be 1 to 100 characters".into(),
        ));
    }
    if !(3..=64).contains(&b.client_id.len())
        || !b
            .client_id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    {
        return Err(ApiError::BadRequest(
            "client_id must be 3 to 64 of A-Z a-z 0-9 . _ -".into(),
        ));
    }
    // A client's own token carries its id as `sub`: a UUID would pass for
    // a user's id at every resource server.
    if Uuid::parse_str(&b.client_id).is_ok() {
        return Err(ApiError::BadRequest(
            "client_id must not be a UUID: a client's tokens would pass for a user's".into(),
        ));
    }
    check_pkce_opt_out(b.public, b.pkce_required)?;
    check_redirect_uris(&b.redirect_uris)?;
    check_grant_types(&b.grant_types, b.public)?;
    if b.grant_types.iter().any(|g| g == "authorization_code") && b.redirect_uris.is_empty() {
        return Err(ApiError::BadRequest(
            "the authorization_code grant needs at least one redirect URI".into(),
        ));
    }
    let secret = match (b.public, b.client_secret) {
        (true, Some(_)) => {
            return Err(ApiError::BadRequest("a public client has no secret".into()))
        }
        (true, None) => None,
        (false, Some(s)) if s.len() < 16 => {
            return Err(ApiError::BadRequest(
                "client_secret must be at least 16 characters".into(),
            ))
        }
        (false, Some(s)) => Some(s),
        (false, None) => Some(crypto::random_token()),
    };
    let new = NewClient {
        id: b.client_id.clone(),
        name: b.name,
        secret_hash: secret.as_deref().map(crypto::digest),
        first_party: b.first_party,
        redirect_uris: b.redirect_uris,
        grant_types: b.grant_types,
        scopes: b.scopes,
        pkce_required: b.pkce_required,
    };
    with_conn(&state.pool, move |c| {
        grants::create_client(c, new).map_err(ApiError::from)
    })
    .await?;
    Ok(HttpResponse::Created().json(client_view(&state, b.client_id, secret).await?))
}

/// `GET /v1/admin/clients/{id}` (`admin:client`).
async fn get_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:client").await?;
    Ok(HttpResponse::Ok().json(client_view(&state, id.into_inner(), None).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientPatch {
    name: Option<String>,
    first_party: Option<bool>,
    redirect_uris: Option<Vec<String>>,
    grant_types: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    pkce_required: Option<bool>,
    /// `true` issues a new secret (shown once).
    #[serde(default)]
    rotate_secret: bool,
}

/// `PATCH /v1/admin/clients/{id}` (`admin:client`).
async fn update_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<ClientPatch>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:client").await?;
    let b = body.into_inner();
    let id = id.into_inner();
    if let Some(u) = &b.redirect_uris {
        check_redirect_uris(u)?;
    }
    let existing = client_view(&state, id.clone(), None).await?;
    if let Some(g) = &b.grant_types {
        check_grant_types(g, existing.public)?;
    }
    if let Some(p) = b.pkce_required {
        check_pkce_opt_out(existing.public, p)?;
    }
    if b.rotate_secret && existing.public {
        return Err(ApiError::BadRequest("a public client has no secret".into()));
    }
    let secret = b.rotate_secret.then(crypto::random_token);
    let change = ClientChange {
        name: b.name,
        first_party: b.first_party,
        redirect_uris: b.redirect_uris,
        grant_types: b.grant_types,
        scopes: b.scopes,
        secret_hash: secret.as_deref().map(crypto::digest),
        pkce_required: b.pkce_required,
    };
    let cid = id.clone();
    with_conn(&state.pool, move |c| {
        grants::update_client(c, &cid, change).map_err(ApiError::from)
    })
    .await?;
    Ok(HttpResponse::Ok().json(client_view(&state, id, secret).await?))
}

/// `DELETE /v1/admin/clients/{id}` (`admin:client`): its grants go with it.
async fn delete_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_persons_scope(&req, &state, "admin:client").await?;
    let id = id.into_inner();
    let cid = id.clone();
    if !with_conn(&state.pool, move |c| {
        grants::delete_client(c, &cid).map_err(ApiError::from)
    })
    .await?
    {
        return Err(ApiError::NotFound(format!("no client {id:?}")));
    }
    // Publishes the revocation of its tokens now.
    state.outbox.nudge();
    Ok(HttpResponse::NoContent().finish())
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
