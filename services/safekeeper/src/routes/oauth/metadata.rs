//! Discovery: the authorization server's metadata (RFC 8414) and the JWKS
//! that verifies its access tokens, public documents for every party.

use actix_web::{http::header, web, HttpResponse};
use platform::db::with_conn;
use serde_json::json;

use crate::{error::ApiError, rbac, state::AppState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/.well-known/oauth-authorization-server",
        web::get().to(metadata),
    )
    .route("/.well-known/jwks.json", web::get().to(jwks));
}

/// `GET /.well-known/oauth-authorization-server` (public), RFC 8414.
async fn metadata(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let scopes = with_conn(&state.pool, |c| {
        rbac::list_scopes(c).map_err(ApiError::from)
    })
    .await?;
    let iss = &state.settings.issuer;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "public, max-age=300")).json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oauth2/authorize"),
        "token_endpoint": format!("{iss}/oauth2/token"),
        "introspection_endpoint": format!("{iss}/oauth2/introspect"),
        "revocation_endpoint": format!("{iss}/oauth2/revoke"),
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": scopes.iter().map(|s| &s.name).collect::<Vec<_>>(),
        "authorization_response_iss_parameter_supported": true,
    })))
}

/// `GET /.well-known/jwks.json` (public): keys that verify access tokens.
async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(state.keys.jwks())
}
