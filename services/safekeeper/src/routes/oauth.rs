//! The OAuth2 authorization server: authorization-code flow with PKCE
//! (RFC 6749, RFC 7636, RFC 9700), token endpoint with refresh rotation and
//! client credentials, introspection (RFC 7662), revocation (RFC 7009),
//! metadata (RFC 8414) and the JWKS.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
};

use actix_web::{
    cookie::{Cookie, SameSite},
    http::{header, StatusCode},
    web, HttpRequest, HttpResponse,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use chrono::{Duration as ChronoDuration, Utc};
use platform::{
    coherent::Lookup,
    db::with_conn,
    jwt::{AccessClaims, END_USER_ADDRESS_HEADER},
};
use reqwest::Url;
use serde_json::json;
use uuid::Uuid;

use super::pages;
use crate::{
    auth::session_user,
    crypto,
    error::{ApiError, OAuthError},
    grants::{self, Client, NewCode, Redeemed, Rotated},
    rbac,
    state::AppState,
    tokens::{join, parse_scopes, respond, response, sign_access, Grant, TokenResponse},
};

pub const SESSION_COOKIE: &str = "sk_session";
/// The scope (a client permission, never a role's) that lets a resource
/// server introspect tokens issued to other clients.
pub const INTROSPECT_SCOPE: &str = "introspect:token";
/// The random value the sign-in form's CSRF token is bound to (there is no
/// session before sign-in: a double-submit cookie).
pub const LOGIN_CSRF_COOKIE: &str = "sk_login";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth2/authorize", web::get().to(authorize))
        .route("/oauth2/login", web::post().to(login))
        .route("/oauth2/consent", web::post().to(consent))
        .route("/oauth2/token", web::post().to(token))
        .route("/oauth2/introspect", web::post().to(introspect))
        .route("/oauth2/revoke", web::post().to(revoke))
        .route(
            "/.well-known/oauth-authorization-server",
            web::get().to(metadata),
        )
        .route("/.well-known/jwks.json", web::get().to(jwks));
}

type Params = HashMap<String, String>;

/// A checked authorization request.
struct AuthzRequest {
    client: Client,
    redirect_uri: String,
    state: Option<String>,
    scope: BTreeSet<String>,
    code_challenge: Option<String>,
    /// The request's parameters, canonical, to carry through the forms.
    fields: Vec<(String, String)>,
}

/// Why a request cannot go on: with an untrusted client or redirect URI we
/// must not redirect (RFC 6749 4.1.2.1), so we show a page; otherwise the
/// error travels back to the client.
enum Refusal {
    Page(StatusCode, String),
    Redirect {
        uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

impl Refusal {
    fn respond(self, issuer: &str) -> HttpResponse {
        match self {
            Refusal::Page(status, msg) => pages::error(status, &msg),
            Refusal::Redirect {
                uri,
                state,
                error,
                description,
            } => {
                let mut pairs = vec![
                    ("error", error.to_owned()),
                    ("error_description", description),
                ];
                if let Some(s) = state {
                    pairs.push(("state", s));
                }
                pairs.push(("iss", issuer.to_owned()));
                redirect_to(&uri, &pairs)
            }
        }
    }
}

fn redirect_to(uri: &str, pairs: &[(&str, String)]) -> HttpResponse {
    let mut url = match Url::parse(uri) {
        Ok(u) => u,
        Err(_) => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "the redirect URI is not a valid URL",
            )
        }
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    HttpResponse::Found()
        .insert_header((header::LOCATION, url.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// A database failure while a browser's request is checked: the 503 page
/// ("try again") only when the database is unavailable, which a retry may
/// mend; anything else is our fault, a 500 page with its cause logged.
/// (Malformed input never gets this far: control characters, which
/// PostgreSQL refuses in text, are answered 400 before any handler runs.)
fn store_failure(e: ApiError) -> Refusal {
    if actix_web::ResponseError::status_code(&e) == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(error = %e, "the database is unavailable for an authorization request");
        Refusal::Page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Please try again in a moment.".into(),
        )
    } else {
        tracing::error!(
            error = format!("{e:#}"),
            "an authorization request could not be checked"
        );
        Refusal::Page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on our side.".into(),
        )
    }
}

const AUTHZ_FIELDS: [&str; 7] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

async fn check_request(state: &AppState, p: &Params) -> Result<AuthzRequest, Refusal> {
    let client_id = p
        .get("client_id")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            Refusal::Page(
                StatusCode::BAD_REQUEST,
                "The request names no client (client_id is missing).".into(),
            )
        })?;
    let cid = client_id.clone();
    let client = with_conn(&state.pool, move |c| {
        grants::client(c, &cid).map_err(ApiError::from)
    })
    .await
    .map_err(store_failure)?
    .ok_or_else(|| {
        Refusal::Page(
            StatusCode::BAD_REQUEST,
            format!("Unknown client {client_id:?}."),
        )
    })?;
    // Exact match only: no prefix, no wildcard, no normalisation.
    let redirect_uri = match p.get("redirect_uri") {
        Some(r) if client.redirect_uris.iter().any(|u| u == r) => r.clone(),
        Some(_) => {
            return Err(Refusal::Page(
                StatusCode::BAD_REQUEST,
                "The redirect URI is not registered for this client.".into(),
            ))
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            return Err(Refusal::Page(
                StatusCode::BAD_REQUEST,
                "The request names no redirect URI.".into(),
            ))
        }
    };
    let st = p.get("state").cloned();
    let refuse = |error: &'static str, description: &str| Refusal::Redirect {
        uri: redirect_uri.clone(),
        state: st.clone(),
        error,
        description: description.to_owned(),
    };
    if p.get("response_type").map(String::as_str) != Some("code") {
        return Err(refuse(
            "unsupported_response_type",
            "only response_type=code is supported",
        ));
    }
    if !client.allows_grant("authorization_code") {
        return Err(refuse(
            "unauthorized_client",
            "this client may not use the authorization code flow",
        ));
    }
    let challenge = p.get("code_challenge").cloned();
    match (
        challenge.as_deref(),
        p.get("code_challenge_method").map(String::as_str),
    ) {
        // RFC 9700 2.1.1: every client, confidential ones too, unless an
        // administrator let a confidential client off.
        (None, _) if client.is_public || client.pkce_required => {
            return Err(refuse(
                "invalid_request",
                "PKCE is required: send code_challenge with code_challenge_method=S256",
            ))
        }
        (None, Some(_)) => {
            return Err(refuse(
                "invalid_request",
                "code_challenge_method without code_challenge",
            ))
        }
        (Some(_), m) if m != Some("S256") => {
            return Err(refuse(
                "invalid_request",
                "code_challenge_method must be S256 (plain is not allowed)",
            ))
        }
        (Some(c), _) if !crypto::valid_challenge(c) => {
            return Err(refuse(
                "invalid_request",
                "code_challenge must be 43 base64url characters",
            ))
        }
        _ => {}
    }
    let scope = parse_scopes(p.get("scope").map(String::as_str).unwrap_or(""));
    let fields = AUTHZ_FIELDS
        .iter()
        .filter_map(|k| p.get(*k).map(|v| (k.to_string(), v.clone())))
        .chain(std::iter::once((
            "redirect_uri".to_owned(),
            redirect_uri.clone(),
        )))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect();
    Ok(AuthzRequest {
        client,
        redirect_uri,
        state: st,
        scope,
        code_challenge: challenge,
        fields,
    })
}

fn query_of(fields: &[(String, String)]) -> String {
    let mut url = Url::parse("http://x/").expect("static URL");
    url.query_pairs_mut()
        .extend_pairs(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    url.query().unwrap_or("").to_owned()
}

/// Ties the consent form to this session and this request.
fn csrf_token(session: &str, fields: &[(String, String)]) -> String {
    crypto::digest(&format!("consent|{session}|{}", query_of(fields)))
}

/// Ties the sign-in form to this browser's login cookie and this request.
fn login_csrf(cookie: &str, return_to: &str) -> String {
    crypto::digest(&format!("login|{cookie}|{return_to}"))
}

/// The sign-in page for `request`, its CSRF token bound to the browser's
/// `sk_login` cookie: the one it has (so that two open sign-in pages both
/// work), or a new one set with the page.
fn login_page(
    req: &HttpRequest,
    state: &AppState,
    request: &AuthzRequest,
    error: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    let return_to = query_of(&request.fields);
    let kept = req
        .cookie(LOGIN_CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| crypto::valid_random_token(v));
    let secret = kept.clone().unwrap_or_else(crypto::random_token);
    let mut page = pages::login(
        &return_to,
        &login_csrf(&secret, &return_to),
        &request.client.name,
        &request.redirect_uri,
        error,
        status,
    );
    if kept.is_none() {
        let cookie = Cookie::build(LOGIN_CSRF_COOKIE, secret)
            .path("/oauth2")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(state.settings.secure_cookies())
            .finish();
        if let Err(e) = page.add_cookie(&cookie) {
            tracing::error!(error = %e, "the sign-in cookie cannot be set");
        }
    }
    page
}

/// Why a form post did not come from our own pages, judged by what the
/// browser says of it: an `Origin` other than ours (`null` included) or a
/// `Sec-Fetch-Site` other than `same-origin` or `none`. Browsers that send
/// neither are left to the CSRF token.
fn cross_site(req: &HttpRequest, own_origin: &str) -> Option<&'static str> {
    let headers = req.headers();
    if headers
        .get_all(header::ORIGIN)
        .any(|o| o.to_str().ok() != Some(own_origin))
    {
        return Some("foreign Origin");
    }
    if headers
        .get_all("sec-fetch-site")
        .any(|v| !matches!(v.to_str(), Ok("same-origin") | Ok("none")))
    {
        return Some("cross-site Sec-Fetch-Site");
    }
    None
}

fn forged_form() -> HttpResponse {
    pages::error(
        StatusCode::FORBIDDEN,
        "This form has expired or did not come from this site. Start again.",
    )
}

/// `GET /oauth2/authorize` (public; a login cookie once signed in).
async fn authorize(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<Params>,
) -> HttpResponse {
    let request = match check_request(&state, &q).await {
        Ok(r) => r,
        Err(refusal) => return refusal.respond(&state.settings.issuer),
    };
    let Some(session) = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
        return login_page(&req, &state, &request, None, StatusCode::OK);
    };
    let user = match session_user(&state, &session).await {
        Ok(u) => u,
        Err(ApiError::Forbidden(_)) => {
            return Refusal::Redirect {
                uri: request.redirect_uri,
                state: request.state,
                error: "access_denied",
                description: "this account is deactivated".into(),
            }
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
    let (names, uid) = (granted.clone(), user.id);
    let described = with_conn(&state.pool, move |c| {
        rbac::list_scopes(c).map_err(ApiError::from)
    })
    .await
    .unwrap_or_default();
    let scopes: Vec<(String, String)> = names
        .iter()
        .map(|n| {
            (
                n.clone(),
                described
                    .iter()
                    .find(|s| &s.name == n)
                    .map(|s| s.description.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let _ = uid;
    let mut fields = request.fields.clone();
    fields.push(("csrf".into(), csrf_token(&session, &request.fields)));
    pages::consent(
        &request.client.name,
        &user.username,
        &scopes,
        &fields,
        &request.redirect_uri,
    )
}

/// requested ∩ what the user holds ∩ what the client may obtain; an empty
/// request means everything the client may obtain.
async fn grantable(
    state: &AppState,
    r: &AuthzRequest,
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
        return Err(Refusal::Redirect {
            uri: r.redirect_uri.clone(),
            state: r.state.clone(),
            error: "invalid_scope",
            description: "none of the requested scopes can be granted to this user and client"
                .into(),
        });
    }
    Ok(granted)
}

async fn issue_code(
    state: &AppState,
    r: AuthzRequest,
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
        return Refusal::Redirect {
            uri: r.redirect_uri,
            state: r.state,
            error: "temporarily_unavailable",
            description: "try again in a moment".into(),
        }
        .respond(&state.settings.issuer);
    }
    let mut pairs = vec![("code", code)];
    if let Some(s) = r.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", state.settings.issuer.clone()));
    redirect_to(&r.redirect_uri, &pairs)
}

/// `POST /oauth2/login` (form, `sk_login` cookie): checks the credentials
/// with the authenticator, sets the login cookie and returns to the
/// authorization. A form that did not come from our own sign-in page (a
/// foreign `Origin` or `Sec-Fetch-Site`, a CSRF token that does not match
/// the cookie) is refused before the authenticator is asked, so it neither
/// signs anyone in nor counts as a failed attempt. The authenticator is
/// told the end user's address (with our `login:relay` token), so that its
/// throttle tells one browser from another.
async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<Params>,
) -> HttpResponse {
    if let Some(reason) = cross_site(&req, &state.settings.origin) {
        tracing::warn!(reason, "a sign-in form from another site was refused");
        return forged_form();
    }
    let return_to = form.get("return_to").cloned().unwrap_or_default();
    let cookie = req
        .cookie(LOGIN_CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let sent = form.get("csrf").map(String::as_str).unwrap_or("");
    if !crypto::valid_random_token(&cookie)
        || !crypto::equal(sent, &login_csrf(&cookie, &return_to))
    {
        tracing::warn!("a sign-in form without a matching CSRF token was refused");
        return forged_form();
    }
    let params: Params = match web::Query::<Params>::from_query(&return_to) {
        Ok(q) => q.into_inner(),
        Err(_) => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "The sign-in form was tampered with.",
            )
        }
    };
    let request = match check_request(&state, &params).await {
        Ok(r) => r,
        Err(refusal) => return refusal.respond(&state.settings.issuer),
    };
    let again = |msg: &str, status| login_page(&req, &state, &request, Some(msg), status);
    let unavailable = || {
        pages::error(
            StatusCode::BAD_GATEWAY,
            "Sign-in is unavailable right now; try again shortly.",
        )
    };
    let (Some(username), Some(password)) = (form.get("username"), form.get("password")) else {
        return again("Enter your username and password.", StatusCode::BAD_REQUEST);
    };
    let relay = match state.relay.get(
        &state.settings.issuer,
        &state.settings.audience,
        &state.keys,
    ) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "the login relay token cannot be signed"
            );
            return unavailable();
        }
    };
    let mut call = platform::telemetry::with_request_id(
        state
            .http
            .post(format!("{}/v1/login", state.settings.authenticator_url)),
    )
    .bearer_auth(relay)
    .json(&json!({"username": username, "password": password}));
    if let Some(ip) = state.settings.trusted_proxies.of_request(&req) {
        call = call.header(END_USER_ADDRESS_HEADER, ip.to_string());
    }
    let answer = match call.send().await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "the authenticator is unreachable");
            return unavailable();
        }
    };
    let status = answer.status().as_u16();
    if status != 200 {
        let retry_after = answer
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| header::HeaderValue::from_str(v).ok());
        // The problem type tells a refused password from a refused relay
        // token, which both answer 401/403.
        let problem = answer
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["type"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let kind = problem.rsplit('/').next().unwrap_or("");
        return match (status, kind) {
            (401, "invalid-credentials") => again(
                "The username or password is wrong.",
                StatusCode::UNAUTHORIZED,
            ),
            (403, "account-inactive") => {
                again("This account is deactivated.", StatusCode::FORBIDDEN)
            }
            (429, _) => {
                let mut page = again(
                    "Too many failed attempts; wait a while and try again.",
                    StatusCode::TOO_MANY_REQUESTS,
                );
                if let Some(v) = retry_after {
                    page.headers_mut().insert(header::RETRY_AFTER, v);
                }
                page
            }
            (401 | 403, _) => {
                tracing::error!(
                    status,
                    problem,
                    "the authenticator refused the safekeeper's login relay token; check its SAFEKEEPER_URL, SAFEKEEPER_ISSUER and ACCESS_TOKEN_AUDIENCE"
                );
                unavailable()
            }
            _ => {
                tracing::error!(
                    status,
                    problem,
                    "unexpected answer from the authenticator's login"
                );
                unavailable()
            }
        };
    }
    let body: serde_json::Value = match answer.json().await {
        Ok(b) => b,
        Err(_) => return unavailable(),
    };
    let (Some(token), expires_in) = (
        body["session_token"].as_str(),
        body["expires_in"].as_i64().unwrap_or(3600),
    ) else {
        return unavailable();
    };
    let cookie = Cookie::build(SESSION_COOKIE, token.to_owned())
        .path("/oauth2")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.settings.secure_cookies())
        .max_age(actix_web::cookie::time::Duration::seconds(expires_in))
        .finish();
    HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((
            header::LOCATION,
            format!("/oauth2/authorize?{}", query_of(&request.fields)),
        ))
        .finish()
}

/// `POST /oauth2/consent` (form, login cookie): the user's decision.
async fn consent(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<Params>,
) -> HttpResponse {
    let form = form.into_inner();
    let request = match check_request(&state, &form).await {
        Ok(r) => r,
        Err(refusal) => return refusal.respond(&state.settings.issuer),
    };
    let Some(session) = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
        return login_page(&req, &state, &request, None, StatusCode::OK);
    };
    let sent = form.get("csrf").map(String::as_str).unwrap_or("");
    if !crypto::equal(sent, &csrf_token(&session, &request.fields)) {
        return forged_form();
    }
    let user = match session_user(&state, &session).await {
        Ok(u) => u,
        Err(_) => return login_page(&req, &state, &request, None, StatusCode::OK),
    };
    if form.get("decision").map(String::as_str) != Some("allow") {
        return Refusal::Redirect {
            uri: request.redirect_uri,
            state: request.state,
            error: "access_denied",
            description: "the user denied the request".into(),
        }
        .respond(&state.settings.issuer);
    }
    match grantable(&state, &request, user.id).await {
        Ok(granted) => issue_code(&state, request, user.id, granted).await,
        Err(r) => r.respond(&state.settings.issuer),
    }
}

/// Client authentication: `client_secret_basic`, `client_secret_post`, or
/// `none` for public clients (which then must use PKCE).
async fn authenticate_client(
    req: &HttpRequest,
    state: &AppState,
    form: &Params,
) -> Result<(Client, BTreeSet<String>), OAuthError> {
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
    let (id, secret, via_basic) = match basic {
        Some(b) => {
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
                web::Query::<HashMap<String, String>>::from_query(&format!("v={s}"))
                    .ok()
                    .and_then(|q| q.get("v").cloned())
                    .unwrap_or_default()
            };
            (dec(id), Some(dec(secret)), true)
        }
        None => (
            form.get("client_id").cloned().ok_or_else(|| {
                OAuthError::invalid_client("client authentication is required", false)
            })?,
            form.get("client_secret").cloned(),
            false,
        ),
    };
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

fn token_ok(resp: TokenResponse) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(resp)
}

fn required<'a>(form: &'a Params, name: &str) -> Result<&'a str, OAuthError> {
    form.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
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
    let inactive = || {
        HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({"active": false}))
    };
    if let Ok(claims) = state.access.verify::<AccessClaims>(&token).await {
        if claims.client_id != client.id && !resource_server {
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
        let issued_to = (claims.client_id != client.id
            && claims.client_id != super::seed::SESSION_CLIENT
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
        return Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({
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
            })));
    }
    let hash = crypto::digest(&token);
    let found = with_conn(&state.pool, move |c| {
        grants::peek_refresh(c, &hash).map_err(ApiError::from)
    })
    .await?;
    Ok(match found {
        // A refresh token is only ever presented by its own client.
        Some((r, exp)) if r.client_id == client.id => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({
                "active": true,
                "token_type": "refresh_token",
                "scope": r.scope,
                "client_id": r.client_id,
                "sub": r.user_id,
                "exp": exp.timestamp(),
            })),
        _ => inactive(),
    })
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

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::cross_site;

    const OWN: &str = "https://sk.example.com";

    fn post(headers: &[(&'static str, &'static str)]) -> actix_web::HttpRequest {
        headers
            .iter()
            .fold(TestRequest::post(), |t, h| t.insert_header(*h))
            .to_http_request()
    }

    #[test]
    fn only_posts_the_browser_calls_same_origin_pass() {
        assert_eq!(cross_site(&post(&[]), OWN), None);
        assert_eq!(
            cross_site(
                &post(&[("origin", OWN), ("sec-fetch-site", "same-origin")]),
                OWN
            ),
            None
        );
        assert_eq!(cross_site(&post(&[("sec-fetch-site", "none")]), OWN), None);
        for refused in [
            &[("origin", "null")][..],
            &[("origin", "https://sk.example.com.evil.example")],
            &[("origin", "http://sk.example.com")],
            &[("origin", OWN), ("sec-fetch-site", "same-site")],
            &[("sec-fetch-site", "cross-site")],
        ] {
            assert!(cross_site(&post(refused), OWN).is_some(), "{refused:?}");
        }
    }
}
