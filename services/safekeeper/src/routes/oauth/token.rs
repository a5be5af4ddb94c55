//! The token endpoint and revocation (`POST /oauth2/token`, RFC 7009
//! `POST /oauth2/revoke`): what a client calls to obtain, refresh and give
//! up its tokens.

use std::collections::BTreeSet;

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use chrono::Utc;
use platform::{db::with_conn, jwt::AccessClaims};
use uuid::Uuid;

use super::{
    client_auth::{authenticate_client, required},
    Params,
};
use crate::{
    crypto,
    error::{ApiError, OAuthError},
    grants::{self, Client, Redeemed, Rotated},
    rbac,
    state::AppState,
    tokens::{parse_scopes, respond, response, sign_access, Grant, TokenResponse},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth2/token", web::post().to(token))
        .route("/oauth2/revoke", web::post().to(revoke));
}

/// A token response, never cached (RFC 6749 5.1).
fn token_ok(resp: TokenResponse) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(resp)
}

/// `POST /oauth2/token` (client authentication): `authorization_code`,
/// `refresh_token` (rotating) and `client_credentials` grants.
async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<Params>,
) -> Result<HttpResponse, OAuthError> {
    let form = form.into_inner();
    let (client, client_scopes) = authenticate_client(&req, &state, &form).await?;
    let grant_type = required(&form, "grant_type")?.to_owned();
    if !matches!(
        grant_type.as_str(),
        "authorization_code" | "refresh_token" | "client_credentials"
    ) {
        return Err(OAuthError::new(
            "unsupported_grant_type",
            format!("{grant_type} is not supported"),
        ));
    }
    if !client.allows_grant(&grant_type) {
        return Err(OAuthError::new(
            "unauthorized_client",
            format!("this client may not use {grant_type}"),
        ));
    }
    match grant_type.as_str() {
        "authorization_code" => code_grant(&state, client, &form).await,
        "refresh_token" => refresh_grant(&state, client, &form).await,
        "client_credentials" => client_grant(&state, client, client_scopes, &form),
        other => Err(OAuthError::new(
            "unsupported_grant_type",
            format!("{other} is not supported"),
        )),
    }
    .map(token_ok)
}

/// Runs a grant's database work in one transaction whose outcome may be a
/// refusal that must still be committed (a replayed code revokes its family).
async fn in_transaction<F>(
    state: &web::Data<AppState>,
    work: F,
) -> Result<TokenResponse, OAuthError>
where
    F: FnOnce(
            &mut diesel::PgConnection,
            &AppState,
        ) -> diesel::QueryResult<Result<TokenResponse, OAuthError>>
        + Send
        + 'static,
{
    let st = state.clone();
    let outcome = with_conn(&state.pool, move |c| -> Result<_, OAuthError> {
        use diesel::Connection;
        Ok(c.transaction(|c| work(c, &st))?)
    })
    .await?;
    if outcome.is_err() {
        // A refusal may have revoked a family: publish that now.
        state.outbox.nudge();
    }
    outcome
}

/// The `authorization_code` grant: a code is spent once, by the client it
/// was issued to, with the redirect URI and the PKCE verifier of its
/// authorization request.
async fn code_grant(
    state: &web::Data<AppState>,
    client: Client,
    form: &Params,
) -> Result<TokenResponse, OAuthError> {
    let code = crypto::digest(required(form, "code")?);
    let redirect_uri = form.get("redirect_uri").cloned();
    let verifier = form.get("code_verifier").cloned();
    in_transaction(state, move |c, st| {
        let code = match grants::redeem_code(c, &code)? {
            Redeemed::Fresh(code) => code,
            Redeemed::Replayed => {
                tracing::warn!(client_id = %client.id, "authorization code replayed; its grant is revoked");
                return Ok(Err(OAuthError::invalid_grant("the code has already been used")));
            }
            Redeemed::Expired => return Ok(Err(OAuthError::invalid_grant("the code has expired"))),
            Redeemed::Unknown => return Ok(Err(OAuthError::invalid_grant("unknown code"))),
        };
        if code.client_id != client.id {
            return Ok(Err(OAuthError::invalid_grant("the code was issued to another client")));
        }
        if redirect_uri.as_deref() != Some(code.redirect_uri.as_str()) {
            return Ok(Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request")));
        }
        match (&code.code_challenge, verifier.as_deref()) {
            (Some(ch), Some(v)) if crypto::pkce_matches(v, ch) => {}
            (Some(_), _) => return Ok(Err(OAuthError::invalid_grant("code_verifier does not match the code challenge"))),
            (None, Some(_)) => return Ok(Err(OAuthError::invalid_grant("no code challenge was sent with the authorization"))),
            (None, None) if client.pkce_required || client.is_public => return Ok(Err(OAuthError::invalid_grant("this client needs PKCE, and the code was issued without a challenge"))),
            (None, None) => {}
        }
        let user = rbac::user(c, code.user_id)?;
        if user.as_ref().is_some_and(|u| !u.is_active) {
            return Ok(Err(OAuthError::invalid_grant("the account is deactivated")));
        }
        let scope = parse_scopes(&code.scope);
        let grant = Grant {
            sub: code.user_id.to_string(),
            username: user.map(|u| u.username),
            client_id: &client.id,
            user_id: Some(code.user_id),
            family: Some(code.family_id),
            scope: &scope,
        };
        let signed = match sign_access(st, &grant) {
            Ok(s) => s,
            Err(e) => return Ok(Err(ApiError::Internal(e).into())),
        };
        Ok(Ok(respond(c, st, &grant, signed, client.allows_grant("refresh_token"))?))
    })
    .await
}

/// The `refresh_token` grant: the token is rotated, and the new access
/// token carries only what the user and the client still hold.
async fn refresh_grant(
    state: &web::Data<AppState>,
    client: Client,
    form: &Params,
) -> Result<TokenResponse, OAuthError> {
    let hash = crypto::digest(required(form, "refresh_token")?);
    let narrower = form.get("scope").map(|s| parse_scopes(s));
    in_transaction(state, move |c, st| {
        let r = match grants::spend_refresh(c, &hash, &client.id)? {
            Rotated::Fresh(r) => r,
            Rotated::Reused => {
                tracing::warn!(client_id = %client.id, "refresh token reused; its family is revoked");
                return Ok(Err(OAuthError::invalid_grant("the refresh token has already been used")));
            }
            Rotated::Invalid => return Ok(Err(OAuthError::invalid_grant("invalid, expired or revoked refresh token"))),
        };
        let original = parse_scopes(&r.scope);
        if let Some(n) = &narrower {
            if !n.is_subset(&original) {
                return Ok(Err(OAuthError::new("invalid_scope", "a refresh may not widen the grant")));
            }
        }
        let Some(user_id) = r.user_id else {
            return Ok(Err(OAuthError::invalid_grant("not a user grant")));
        };
        let user = rbac::user(c, user_id)?;
        if user.as_ref().is_some_and(|u| !u.is_active) {
            grants::revoke_family(c, r.family_id)?;
            return Ok(Err(OAuthError::invalid_grant("the account is deactivated")));
        }
        // A revoked role takes effect at the next refresh.
        let held = rbac::user_scopes(c, user_id)?;
        let allowed = rbac::client_scopes(c, &client.id)?;
        let scope: BTreeSet<String> =
            narrower.unwrap_or(original).into_iter().filter(|s| held.contains(s) && allowed.contains(s)).collect();
        if scope.is_empty() {
            return Ok(Err(OAuthError::invalid_grant("the user no longer holds any of the granted scopes")));
        }
        let grant = Grant {
            sub: user_id.to_string(),
            username: user.map(|u| u.username),
            client_id: &client.id,
            user_id: Some(user_id),
            family: Some(r.family_id),
            scope: &scope,
        };
        let signed = match sign_access(st, &grant) {
            Ok(s) => s,
            Err(e) => return Ok(Err(ApiError::Internal(e).into())),
        };
        Ok(Ok(respond(c, st, &grant, signed, true)?))
    })
    .await
}

/// Client credentials: no user, no grant, nothing to store; the client
/// and its scopes were loaded with its authentication.
fn client_grant(
    state: &AppState,
    client: Client,
    allowed: BTreeSet<String>,
    form: &Params,
) -> Result<TokenResponse, OAuthError> {
    if client.is_public {
        return Err(OAuthError::new(
            "unauthorized_client",
            "public clients cannot use client_credentials",
        ));
    }
    let wanted = form
        .get("scope")
        .map(|s| parse_scopes(s))
        .unwrap_or_default();
    let scope: BTreeSet<String> = if wanted.is_empty() {
        allowed
    } else {
        wanted.into_iter().filter(|s| allowed.contains(s)).collect()
    };
    if scope.is_empty() {
        return Err(OAuthError::new(
            "invalid_scope",
            "none of the requested scopes is allowed for this client",
        ));
    }
    let grant = Grant {
        sub: client.id.clone(),
        username: None,
        client_id: &client.id,
        user_id: None,
        family: None,
        scope: &scope,
    };
    let signed = sign_access(state, &grant).map_err(|e| OAuthError::from(ApiError::Internal(e)))?;
    Ok(response(state, &grant, signed, None))
}

/// `POST /oauth2/revoke` (client authentication), RFC 7009: always 200.
async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<Params>,
) -> Result<HttpResponse, OAuthError> {
    let form = form.into_inner();
    let (client, _) = authenticate_client(&req, &state, &form).await?;
    let token = required(&form, "token")?.to_owned();
    if let Ok(claims) = state.access.verify::<AccessClaims>(&token).await {
        // Only the client a token was issued to may revoke it.
        if let (Ok(jti), true) = (claims.jti.parse::<Uuid>(), claims.client_id == client.id) {
            let (cid, exp) = (
                client.id.clone(),
                chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or_else(Utc::now),
            );
            with_conn(&state.pool, move |c| {
                grants::revoke_access(c, jti, &cid, exp).map_err(ApiError::from)
            })
            .await?;
        }
    } else {
        let hash = crypto::digest(&token);
        let cid = client.id.clone();
        with_conn(&state.pool, move |c| -> Result<(), ApiError> {
            if let Some((r, _)) = grants::peek_refresh(c, &hash)? {
                // Only the client it was issued to may revoke it.
                if r.client_id == cid {
                    grants::revoke_family(c, r.family_id)?;
                }
            }
            Ok(())
        })
        .await?;
    }
    // Publishes the revocation (if any) now, not at the next poll.
    state.outbox.nudge();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}
