//! Client authentication (RFC 6749 2.3) and the required form parameters of
//! the endpoints clients and resource servers call: token, introspection
//! and revocation.

use std::{collections::BTreeSet, sync::Arc};

use actix_web::{http::header, web, HttpRequest};
use base64::{engine::general_purpose::STANDARD, Engine};
use platform::{coherent::Lookup, db::with_conn};

use super::Params;
use crate::{
    crypto,
    error::{ApiError, OAuthError},
    grants::{self, Client},
    rbac,
    state::AppState,
};

/// Client authentication: `client_secret_basic`, `client_secret_post`, or
/// `none` for public clients (which then must use PKCE).
pub(super) async fn authenticate_client(
    req: &HttpRequest,
    state: &AppState,
    form: &Params,
) -> Result<(Client, BTreeSet<String>), OAuthError> {
    let (id, secret, via_basic) = credentials(req, form)?;
    let found = match state.clients.lookup(&id) {
        Lookup::Hit(known) => known,
        miss => {
            let cid = id.clone();
            // One trip to the database: the client and what it may obtain.
            let known = with_conn(&state.pool, move |c| -> Result<_, ApiError> {
                match grants::client(c, &cid)? {
                    Some(client) => {
                        let scopes = rbac::client_scopes(c, &cid)?;
                        Ok(Some(Arc::new((client, scopes))))
                    }
                    None => Ok(None),
                }
            })
            .await?
            .ok_or_else(|| {
                OAuthError::invalid_client("unknown client or wrong secret", via_basic)
            })?;
            if let Lookup::Miss(generation) = miss {
                state.clients.fill(generation, known.clone());
            }
            known
        }
    };
    let found = (found.0.clone(), found.1.clone());
    match (&found.0.secret_hash, secret) {
        (Some(hash), Some(secret)) if crypto::equal(&crypto::digest(&secret), hash) => Ok(found),
        (None, None) => Ok(found),
        (None, Some(_)) => Err(OAuthError::invalid_client(
            "a public client has no secret",
            via_basic,
        )),
        _ => Err(OAuthError::invalid_client(
            "unknown client or wrong secret",
            via_basic,
        )),
    }
}

/// The client id and secret the request presents, and whether they came in
/// the `Authorization` header (Basic) rather than in the form.
fn credentials(
    req: &HttpRequest,
    form: &Params,
) -> Result<(String, Option<String>, bool), OAuthError> {
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("basic")
                .then(|| rest.trim().to_owned())
        });
    let Some(b) = basic else {
        return Ok((
            form.get("client_id").cloned().ok_or_else(|| {
                OAuthError::invalid_client("client authentication is required", false)
            })?,
            form.get("client_secret").cloned(),
            false,
        ));
    };
    if form.contains_key("client_secret") {
        return Err(OAuthError::invalid_request(
            "use one client authentication method, not two",
        ));
    }
    let decoded = STANDARD
        .decode(b)
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials", true))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials", true))?;
    // RFC 6749 2.3.1: both parts are form-urlencoded.
    let dec = |s: &str| {
        web::Query::<Params>::from_query(&format!("v={s}"))
            .ok()
            .and_then(|q| q.get("v").cloned())
            .unwrap_or_default()
    };
    Ok((dec(id), Some(dec(secret)), true))
}

/// A form parameter that must be present and not empty.
pub(super) fn required<'a>(form: &'a Params, name: &str) -> Result<&'a str, OAuthError> {
    form.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
}
