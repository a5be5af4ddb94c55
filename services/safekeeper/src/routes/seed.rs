//! The task-management design's endpoints: exchanging a session token for an access token,
//! and reading one's own permissions.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use platform::db::with_conn;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    auth::{access_token, bearer, session_token_of_authorize, session_user, SESSION_ENDED},
    error::ApiError,
    grants, rbac,
    state::AppState,
    tokens::{join, parse_scopes, response, sign_access, Grant},
};

/// The `client_id` of tokens exchanged directly from a session.
pub const SESSION_CLIENT: &str = "session";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/authorize", web::post().to(authorize))
        .route("/v1/permission", web::get().to(permission));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorizeRequest {
    scopes: String,
    client_id: Option<String>,
}

#[derive(Serialize)]
struct AuthorizeResponse {
    access_token: String,
    expires_in: u64,
    scopes: String,
    token_type: &'static str,
}

/// `POST /v1/authorize` (the session token, Bearer or bare: see
/// [`session_token_of_authorize`]): `{"scopes": "a,b"}` to an
/// access token carrying exactly those scopes, or 403 naming the missing.
/// `client_id` (a first-party client's only, else 403) limits the scopes to
/// what that client may obtain and names it in the token.
async fn authorize(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<AuthorizeRequest>,
) -> Result<HttpResponse, ApiError> {
    let token = session_token_of_authorize(&req)?;
    let user = session_user(&state, &token).await?;
    let body = body.into_inner();
    let wanted = parse_scopes(&body.scopes);
    if wanted.is_empty() {
        return Err(ApiError::BadRequest(
            "scopes must name at least one scope, e.g. \"read:task,edit:task\"".into(),
        ));
    }
    let client_id = body.client_id.unwrap_or_else(|| SESSION_CLIENT.to_owned());
    let (cid, uid) = (client_id.clone(), user.id);
    let allowed = with_conn(&state.pool, move |c| -> Result<_, ApiError> {
        let mut held = rbac::user_scopes(c, uid)?;
        if cid != SESSION_CLIENT {
            let found = grants::client(c, &cid)?
                .ok_or_else(|| ApiError::BadRequest(format!("unknown client {cid:?}")))?;
            // A third-party client gets a user's token only through the
            // code flow, with the user's consent.
            if !found.first_party {
                return Err(ApiError::Forbidden(format!(
                    "client {cid:?} is not first-party: a third-party client obtains tokens through the authorization code flow, with the user's consent"
                )));
            }
            let client = rbac::client_scopes(c, &cid)?;
            held.retain(|s| client.contains(s));
        }
        Ok(held)
    })
    .await?;
    let missing: Vec<String> = wanted.difference(&allowed).cloned().collect();
    if !missing.is_empty() {
        return Err(ApiError::MissingScopes(missing));
    }
    let grant = Grant {
        sub: uid.to_string(),
        username: Some(user.username),
        client_id: &client_id,
        user_id: Some(uid),
        family: None,
        scope: &wanted,
    };
    let resp = response(&state, &grant, sign_access(&state, &grant)?, None);
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(AuthorizeResponse {
            access_token: resp.access_token,
            expires_in: resp.expires_in,
            scopes: join(&wanted, ","),
            token_type: "Bearer",
        }))
}

#[derive(Serialize)]
struct PermissionResponse {
    user_id: Uuid,
    username: Option<String>,
    roles: Vec<String>,
    scopes: Vec<String>,
}

/// `GET /v1/permission` (Bearer session or access token): the caller's
/// roles and the scopes they carry.
async fn permission(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let token = bearer(&req)?;
    let (id, username) = match session_user(&state, &token).await {
        Ok(u) => (u.id, Some(u.username)),
        Err(ApiError::Unauthenticated(why)) => {
            let claims = match access_token(&state, &token).await {
                Ok(c) => c,
                // A genuine session token whose session has ended: say so,
                // rather than that it is no access token.
                Err(ApiError::Unauthenticated(_)) if why == SESSION_ENDED => {
                    return Err(ApiError::Unauthenticated(why))
                }
                Err(e) => return Err(e),
            };
            let id = claims.sub.parse().map_err(|_| {
                ApiError::BadRequest("a client's own token has no user permissions".into())
            })?;
            (id, claims.username)
        }
        Err(e) => return Err(e),
    };
    let (roles, scopes) = with_conn(&state.pool, move |c| -> Result<_, ApiError> {
        Ok((rbac::user_roles(c, id)?, rbac::user_scopes(c, id)?))
    })
    .await?;
    Ok(HttpResponse::Ok().json(PermissionResponse {
        user_id: id,
        username,
        roles,
        scopes: scopes.into_iter().collect(),
    }))
}
