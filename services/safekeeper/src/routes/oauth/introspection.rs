//! Token introspection (RFC 7662, `POST /oauth2/introspect`): resource
//! servers (and a client, of its own tokens) learn whether a token is live
//! and what it grants.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use platform::{coherent::Lookup, db::with_conn, jwt::AccessClaims};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{
    client_auth::{authenticate_client, required},
    Params,
};
use crate::{
    crypto,
    error::{ApiError, OAuthError},
    grants, rbac,
    routes::seed::SESSION_CLIENT,
    state::AppState,
};

/// The scope (a client permission, never a role's) that lets a resource
/// server introspect tokens issued to other clients.
pub const INTROSPECT_SCOPE: &str = "introspect:token";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth2/introspect", web::post().to(introspect));
}

/// `POST /oauth2/introspect` (confidential client authentication), RFC 7662.
async fn introspect(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<Params>,
) -> Result<HttpResponse, OAuthError> {
    let form = form.into_inner();
    let (client, client_scopes) = authenticate_client(&req, &state, &form).await?;
    if client.is_public {
        return Err(OAuthError::new(
            "unauthorized_client",
            "only confidential clients may introspect",
        ));
    }
    // RFC 9700 / RFC 7662 4: a token is described only to the client it was
    // issued to, or (an access token) to a resource server holding
    // `introspect:token`; any other client learns nothing of it.
    let resource_server = client_scopes.contains(INTROSPECT_SCOPE);
    let token = required(&form, "token")?.to_owned();
    let answer = match state.access.verify::<AccessClaims>(&token).await {
        Ok(claims) => describe_access(&state, &client.id, resource_server, claims).await?,
        Err(_) => describe_refresh(&state, &client.id, &token).await?,
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(answer))
}

/// The answer for a token that is not live, or not the caller's to know of.
fn inactive() -> Value {
    json!({"active": false})
}

/// What a genuine access token grants, if it is still live and `caller`
/// (a client id) may know of it.
async fn describe_access(
    state: &AppState,
    caller: &str,
    resource_server: bool,
    claims: AccessClaims,
) -> Result<Value, OAuthError> {
    if claims.client_id != caller && !resource_server {
        return Ok(inactive());
    }
    let Ok(jti) = claims.jti.parse::<Uuid>() else {
        return Ok(inactive());
    };
    let sub = claims.sub.parse::<Uuid>().ok();
    let family = claims.sid.as_deref().and_then(|f| f.parse::<Uuid>().ok());
    // A deleted client's tokens are dead too: the caller's own client
    // exists (it just authenticated), the task-management design's
    // session exchange (`/v1/authorize`, client id `session`) is no
    // stored client; another is known from the client cache, or read in
    // the same trip to the database.
    let issued_to = (claims.client_id != caller
        && claims.client_id != SESSION_CLIENT
        && !matches!(state.clients.lookup(&claims.client_id), Lookup::Hit(_)))
    .then(|| claims.client_id.clone());
    let live = with_conn(&state.pool, move |c| -> Result<bool, ApiError> {
        if let Some(cid) = issued_to {
            if grants::client(c, &cid)?.is_none() {
                return Ok(false);
            }
        }
        let inactive_user = match sub {
            Some(u) => rbac::user(c, u)?.is_some_and(|u| !u.is_active),
            None => false,
        };
        Ok(!grants::access_revoked(c, jti, family)? && !inactive_user)
    })
    .await?;
    if !live {
        return Ok(inactive());
    }
    Ok(json!({
        "active": true,
        "token_type": "Bearer",
        "scope": claims.scope,
        "client_id": claims.client_id,
        "sub": claims.sub,
        "username": claims.username,
        "aud": claims.aud,
        "iss": claims.iss,
        "iat": claims.iat,
        "exp": claims.exp,
        "jti": claims.jti,
    }))
}

/// What a refresh token grants, if it is still live and `caller` is the
/// client it was issued to.
async fn describe_refresh(
    state: &AppState,
    caller: &str,
    token: &str,
) -> Result<Value, OAuthError> {
    let hash = crypto::digest(token);
    let found = with_conn(&state.pool, move |c| {
        grants::peek_refresh(c, &hash).map_err(ApiError::from)
    })
    .await?;
    Ok(match found {
        // A refresh token is only ever presented by its own client.
        Some((r, exp)) if r.client_id == caller => json!({
            "active": true,
            "token_type": "refresh_token",
            "scope": r.scope,
            "client_id": r.client_id,
            "sub": r.user_id,
            "exp": exp.timestamp(),
        }),
        _ => inactive(),
    })
}
