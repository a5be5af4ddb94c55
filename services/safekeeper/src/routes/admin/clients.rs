//! The admin API's clients (`admin:client`): registering, reading,
//! changing and deleting the OAuth2 clients, with the checks RFC 9700 asks
//! of their redirect URIs, grant types and PKCE.

use actix_web::{web, HttpRequest, HttpResponse};
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

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/admin/clients", web::get().to(list_clients))
        .route("/v1/admin/clients", web::post().to(create_client))
        .route("/v1/admin/clients/{id}", web::get().to(get_client))
        .route("/v1/admin/clients/{id}", web::patch().to(update_client))
        .route("/v1/admin/clients/{id}", web::delete().to(delete_client));
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
