//! The authorization endpoint and the consent form (`GET /oauth2/authorize`,
//! `POST /oauth2/consent`): what a signed-in browser goes through between
//! a client's redirect and the authorization code sent back to it.

use std::collections::BTreeSet;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use chrono::{Duration as ChronoDuration, Utc};
use platform::db::with_conn;
use uuid::Uuid;

use super::{
    login::{forged_form, login_page, SESSION_COOKIE},
    request::{redirect_to, store_failure, AuthorizationRequest, Refusal},
    Params,
};
use crate::{
    auth::session_user,
    crypto,
    error::ApiError,
    grants::{self, NewCode},
    rbac,
    routes::pages,
    state::AppState,
    tokens::join,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth2/authorize", web::get().to(authorize))
        .route("/oauth2/consent", web::post().to(consent));
}

/// Ties the consent form to this session and this request.
fn csrf_token(session: &str, request: &AuthorizationRequest) -> String {
    crypto::digest(&format!("consent|{session}|{}", request.query()))
}

/// `GET /oauth2/authorize` (public; a login cookie once signed in).
async fn authorize(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<Params>,
) -> HttpResponse {
    let request = match AuthorizationRequest::parse(&state, &q).await {
        Ok(r) => r,
        Err(refusal) => return refusal.respond(&state.settings.issuer),
    };
    let Some(session) = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
        return login_page(&req, &state, &request, None, StatusCode::OK);
    };
    let user = match session_user(&state, &session).await {
        Ok(u) => u,
        Err(ApiError::Forbidden(_)) => {
            return request
                .refuse("access_denied", "this account is deactivated")
                .respond(&state.settings.issuer)
        }
        // Expired, ended or foreign cookie: sign in again.
        Err(_) => return login_page(&req, &state, &request, None, StatusCode::OK),
    };
    let granted = match grantable(&state, &request, user.id).await {
        Ok(g) => g,
        Err(r) => return r.respond(&state.settings.issuer),
    };
    if request.client.first_party {
        return issue_code(&state, request, user.id, granted).await;
    }
    let scopes = described(&state, &granted).await;
    let mut fields = request.fields.clone();
    fields.push(("csrf".into(), csrf_token(&session, &request)));
    pages::consent(
        &request.client.name,
        &user.username,
        &scopes,
        &fields,
        &request.redirect_uri,
    )
}

/// The scopes to grant with their descriptions, for the consent page (a
/// scope the catalogue cannot describe right now goes without).
async fn described(state: &AppState, granted: &BTreeSet<String>) -> Vec<(String, String)> {
    let catalogue = with_conn(&state.pool, move |c| {
        rbac::list_scopes(c).map_err(ApiError::from)
    })
    .await
    .unwrap_or_default();
    granted
        .iter()
        .map(|n| {
            (
                n.clone(),
                catalogue
                    .iter()
                    .find(|s| &s.name == n)
                    .map(|s| s.description.clone())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// `POST /oauth2/consent` (form, login cookie): the user's decision.
async fn consent(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<Params>,
) -> HttpResponse {
    let form = form.into_inner();
    let request = match AuthorizationRequest::parse(&state, &form).await {
        Ok(r) => r,
        Err(refusal) => return refusal.respond(&state.settings.issuer),
    };
    let Some(session) = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
        return login_page(&req, &state, &request, None, StatusCode::OK);
    };
    let sent = form.get("csrf").map(String::as_str).unwrap_or("");
    if !crypto::equal(sent, &csrf_token(&session, &request)) {
        return forged_form();
    }
    let user = match session_user(&state, &session).await {
        Ok(u) => u,
        Err(_) => return login_page(&req, &state, &request, None, StatusCode::OK),
    };
    if form.get("decision").map(String::as_str) != Some("allow") {
        return request
            .refuse("access_denied", "the user denied the request")
            .respond(&state.settings.issuer);
    }
    match grantable(&state, &request, user.id).await {
        Ok(granted) => issue_code(&state, request, user.id, granted).await,
        Err(r) => r.respond(&state.settings.issuer),
    }
}

/// requested ∩ what the user holds ∩ what the client may obtain; an empty
/// request means everything the client may obtain.
async fn grantable(
    state: &AppState,
    r: &AuthorizationRequest,
    user: Uuid,
) -> Result<BTreeSet<String>, Refusal> {
    let cid = r.client.id.clone();
    let (held, client) = with_conn(&state.pool, move |c| -> Result<_, ApiError> {
        Ok((rbac::user_scopes(c, user)?, rbac::client_scopes(c, &cid)?))
    })
    .await
    .map_err(store_failure)?;
    let wanted = if r.scope.is_empty() {
        client.clone()
    } else {
        r.scope.clone()
    };
    let granted: BTreeSet<String> = wanted
        .into_iter()
        .filter(|s| held.contains(s) && client.contains(s))
        .collect();
    if granted.is_empty() {
        return Err(r.refuse(
            "invalid_scope",
            "none of the requested scopes can be granted to this user and client",
        ));
    }
    Ok(granted)
}

/// Stores a new code (in a new grant family) and sends it to the client.
async fn issue_code(
    state: &AppState,
    r: AuthorizationRequest,
    user: Uuid,
    granted: BTreeSet<String>,
) -> HttpResponse {
    let code = crypto::random_token();
    let hash = crypto::digest(&code);
    let expires_at = Utc::now() + ChronoDuration::seconds(state.settings.code_ttl.as_secs() as i64);
    let (cid, redirect, challenge, scope) = (
        r.client.id.clone(),
        r.redirect_uri.clone(),
        r.code_challenge.clone(),
        join(&granted, " "),
    );
    let stored = with_conn(&state.pool, move |c| -> Result<(), ApiError> {
        use diesel::Connection;
        c.transaction(|c| {
            let family = grants::new_family(c, &cid, Some(user))?;
            grants::insert_code(
                c,
                NewCode {
                    code_hash: &hash,
                    family,
                    client_id: &cid,
                    user_id: user,
                    redirect_uri: &redirect,
                    scope: &scope,
                    code_challenge: challenge.as_deref(),
                    expires_at,
                },
            )
        })?;
        Ok(())
    })
    .await;
    if stored.is_err() {
        return r
            .refuse("temporarily_unavailable", "try again in a moment")
            .respond(&state.settings.issuer);
    }
    let mut pairs = vec![("code", code)];
    if let Some(s) = r.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", state.settings.issuer.clone()));
    redirect_to(&r.redirect_uri, &pairs)
}
