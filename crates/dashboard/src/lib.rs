//! A dashboard's sign-in: each dashboard (accounting's, analytics') is a
//! confidential OAuth2 client of the safekeeper, and the browser only ever
//! holds an opaque, HttpOnly session cookie.
//!
//! The flow:
//!
//! 1. `GET /dashboard` without a session shows a "Sign in" link to
//!    `GET /dashboard/signin` ([`Dashboard::begin`]): a random `state` and a
//!    PKCE verifier are made; the digest of `state` and the verifier are
//!    stored (`dashboard_logins`, ten minutes), `state` is also set in a
//!    login cookie, and the browser is sent (303) to the safekeeper's
//!    `/oauth2/authorize` with the S256 challenge.
//! 2. The person signs in on the safekeeper's own page; the safekeeper
//!    sends the browser back to `/dashboard/callback?code=…&state=…&iss=…`
//!    ([`Dashboard::callback`]). The query's `state` must equal the login
//!    cookie's (compared in constant time: a callback the browser did not
//!    start, a login CSRF, stops here with nothing stored), and its `iss`
//!    the safekeeper's issuer (RFC 9207: an answer from another
//!    authorization server, a mix-up, is refused before its code is sent
//!    anywhere); the stored
//!    verifier is taken (once); the code is exchanged at `/oauth2/token`
//!    with the client's secret (HTTP Basic) and the verifier; the access
//!    token is verified as the service verifies bearer tokens (the
//!    safekeeper's JWKS, `typ`, issuer, audience, expiry) and must be this
//!    client's. A session is stored (`dashboard_sessions`: the SHA-256 of a
//!    random id, the tokens sealed under a key only that id gives
//!    ([`sealed`]), an expiry) and its id set in the session
//!    cookie (`HttpOnly; SameSite=Lax; Path=/`, `Secure` and `__Host-`
//!    unless turned off for local http).
//! 3. Each page finds its session from the cookie ([`Dashboard::session`]);
//!    an expired access token is refreshed with the refresh token (which
//!    the safekeeper rotates), and when that fails the session ends and the
//!    person is asked to sign in again. The service then checks the token's
//!    revocation and its users read model as for any bearer token.
//! 4. `POST /dashboard/signout` ([`Dashboard::sign_out`]) needs the form's
//!    CSRF token (derived from the session id, so only a page of this
//!    session knows it): the session is deleted, its cookie cleared, and
//!    its refresh token revoked at `/oauth2/revoke` (which ends the whole
//!    grant, access tokens included).
//!
//! [`html`] has the pages' layout. Nothing here does I/O until called.

pub mod config;
pub mod html;
pub mod routes;
pub mod sealed;
pub mod store;

use std::collections::HashMap;

use actix_web::{
    cookie::{time::Duration as CookieDuration, Cookie, SameSite},
    http::{header, StatusCode},
    HttpRequest, HttpResponse,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64URL, Engine};
use chrono::Utc;
use platform::{
    db::{with_conn, PgPool, StoreError},
    jwt::{AccessClaims, TokenError, Verifier},
};
use ring::rand::{SecureRandom, SystemRandom};
use sealed::{Kind, Sealer};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use config::{Config, Links};

/// How long a sign-in may take between the redirect and the callback.
const LOGIN_TTL_SECONDS: i64 = 600;

/// Why a dashboard request could not go on: shown as an HTML page.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the database is unavailable")]
    Store(#[from] StoreError),
    #[error("the database refused: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("the safekeeper cannot be reached: {0}")]
    Safekeeper(String),
    #[error("the safekeeper's keys cannot be fetched")]
    KeysUnavailable,
}

impl Error {
    /// The page a person sees (503: nothing they did wrong).
    pub fn page(&self) -> HttpResponse {
        tracing::warn!(error = %self, "a dashboard request failed");
        html::message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            "The dashboard cannot reach what it needs right now. Try again in a moment.",
        )
    }
}

/// 32 random bytes, base64url: 43 characters (also a valid PKCE verifier).
fn random_token() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Safekeeper("no randomness from the operating system".into()))?;
    Ok(B64URL.encode(bytes))
}

/// `token` sealed for the session row ([`sealed`]).
fn seal(sealer: &Sealer, kind: Kind, token: &str) -> Result<String, Error> {
    sealer
        .seal(kind, token)
        .ok_or_else(|| Error::Safekeeper("no randomness from the operating system".into()))
}

/// A token answer's access and refresh tokens, sealed for the session row.
fn seal_tokens(sealer: &Sealer, tokens: &TokenResponse) -> Result<(String, Option<String>), Error> {
    let access = seal(sealer, Kind::Access, &tokens.access_token)?;
    let refresh = tokens
        .refresh_token
        .as_deref()
        .map(|t| seal(sealer, Kind::Refresh, t))
        .transpose()?;
    Ok((access, refresh))
}

/// SHA-256 of `value`, base64url: what the tables keep.
pub fn digest(value: &str) -> String {
    B64URL.encode(Sha256::digest(value.as_bytes()))
}

/// The PKCE S256 challenge of `verifier`.
pub fn challenge(verifier: &str) -> String {
    digest(verifier)
}

fn equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The sign-out form's CSRF token of session `id`.
fn csrf_of(id: &str) -> String {
    digest(&format!("dashboard-signout|{id}"))
}

/// A signed-in browser's session, its access token verified.
pub struct Session {
    /// The verified access token's claims (`sub`, `scope`, `jti`, `sid`).
    pub claims: AccessClaims,
    /// The name to greet them with.
    pub name: String,
    /// The sign-out form's CSRF token.
    pub csrf: String,
}

impl Session {
    /// For the page's header.
    pub fn signed_in(&self) -> html::SignedIn<'_> {
        html::SignedIn {
            name: &self.name,
            csrf: &self.csrf,
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: Option<String>,
}

/// A dashboard's OAuth2 client: its settings and an HTTP client for the
/// safekeeper.
pub struct Dashboard {
    pub config: Config,
    http: reqwest::Client,
}

impl Dashboard {
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { config, http })
    }

    fn cookie(&self, name: String, value: String, max_age_secs: i64) -> Cookie<'static> {
        Cookie::build(name, value)
            .path("/")
            .http_only(true)
            .secure(self.config.cookie_secure)
            .same_site(SameSite::Lax)
            .max_age(CookieDuration::seconds(max_age_secs))
            .finish()
    }

    fn removal(&self, name: String) -> Cookie<'static> {
        self.cookie(name, String::new(), 0)
    }

    /// `GET /dashboard/signin`: a new `state` and PKCE verifier, and a 303
    /// to the safekeeper's authorization endpoint.
    pub async fn begin(&self, pool: &PgPool) -> Result<HttpResponse, Error> {
        let state = random_token()?;
        let verifier = random_token()?;
        let (hash, v) = (digest(&state), verifier.clone());
        let expires = Utc::now() + chrono::Duration::seconds(LOGIN_TTL_SECONDS);
        with_conn(pool, move |c| -> Result<(), Error> {
            Ok(store::insert_login(c, &hash, &v, expires)?)
        })
        .await?;
        let url = reqwest::Url::parse_with_params(
            &format!("{}/oauth2/authorize", self.config.safekeeper_public_url),
            &[
                ("response_type", "code"),
                ("client_id", self.config.client_id.as_str()),
                ("redirect_uri", self.config.redirect_uri().as_str()),
                ("scope", self.config.scope.as_str()),
                ("state", state.as_str()),
                ("code_challenge", challenge(&verifier).as_str()),
                ("code_challenge_method", "S256"),
            ],
        )
        .map_err(|e| Error::Safekeeper(format!("SAFEKEEPER_PUBLIC_URL is not a URL: {e}")))?;
        Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, url.as_str()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .cookie(self.cookie(self.config.login_cookie(), state, LOGIN_TTL_SECONDS))
            .finish())
    }

    /// `GET /dashboard/callback`: the safekeeper's answer. Refused with
    /// nothing stored unless `state` is the one this browser's sign-in
    /// began with; a 403 page when the safekeeper refused the person.
    pub async fn callback(
        &self,
        pool: &PgPool,
        verifier: &Verifier,
        req: &HttpRequest,
        query: &HashMap<String, String>,
    ) -> HttpResponse {
        match self.try_callback(pool, verifier, req, query).await {
            Ok(r) => r,
            Err(e) => e.page(),
        }
    }

    async fn try_callback(
        &self,
        pool: &PgPool,
        verifier: &Verifier,
        req: &HttpRequest,
        query: &HashMap<String, String>,
    ) -> Result<HttpResponse, Error> {
        let clear_login = self.removal(self.config.login_cookie());
        let cookie = req.cookie(&self.config.login_cookie());
        let (Some(state), Some(cookie)) = (query.get("state"), cookie) else {
            return Ok(forged());
        };
        if state.is_empty() || !equal(state, cookie.value()) {
            return Ok(forged());
        }
        // RFC 9207: the safekeeper names itself in every authorization
        // response; one that names another issuer (or none) did not come
        // from it, and its code is not sent anywhere (a mix-up attack). As
        // with a wrong state, the browser's own sign-in stays pending.
        if query.get("iss").map(String::as_str) != Some(verifier.issuer()) {
            return Ok(html::message(
                StatusCode::BAD_REQUEST,
                "Sign-in refused",
                "This answer did not come from the platform's sign-in. Please sign in again.",
            ));
        }
        let hash = digest(state);
        let Some(pkce) = with_conn(pool, move |c| -> Result<_, Error> {
            Ok(store::take_login(c, &hash)?)
        })
        .await?
        else {
            return Ok(html::message(
                StatusCode::BAD_REQUEST,
                "Sign-in expired",
                "This sign-in was already used or took too long. Please sign in again.",
            ));
        };
        if let Some(error) = query.get("error") {
            let mut r = if matches!(error.as_str(), "access_denied" | "invalid_scope") {
                refused()
            } else {
                html::message(
                    StatusCode::BAD_REQUEST,
                    "Sign-in failed",
                    &format!("The safekeeper refused the sign-in ({error})."),
                )
            };
            let _ = r.add_cookie(&clear_login);
            return Ok(r);
        }
        let Some(code) = query.get("code") else {
            return Ok(forged());
        };
        let tokens = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.config.redirect_uri()),
                ("code_verifier", &pkce),
            ])
            .await?;
        let Some(tokens) = tokens else {
            return Ok(html::message(
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                "The safekeeper did not accept this sign-in. Please sign in again.",
            ));
        };
        let claims = match self.verify(verifier, &tokens.access_token).await {
            Ok(c) => c,
            Err(Some(e)) => return Err(e),
            Err(None) => {
                return Ok(html::message(
                    StatusCode::BAD_REQUEST,
                    "Sign-in failed",
                    "The safekeeper's answer could not be verified.",
                ))
            }
        };
        let id = random_token()?;
        let (access_token, refresh_token) = seal_tokens(&Sealer::of_session(&id), &tokens)?;
        let now = Utc::now();
        let ttl = i64::try_from(self.config.session_ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let row = store::SessionRow {
            id_hash: digest(&id),
            subject: claims.sub.clone(),
            name: claims
                .username
                .clone()
                .unwrap_or_else(|| claims.sub.clone()),
            access_token,
            refresh_token,
            expires_at: now + chrono::Duration::seconds(ttl),
            created_at: now,
        };
        with_conn(pool, move |c| -> Result<(), Error> {
            Ok(store::insert_session(c, &row)?)
        })
        .await?;
        tracing::info!(subject = %claims.sub, "dashboard session started");
        Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/dashboard"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .cookie(clear_login)
            .cookie(self.cookie(self.config.session_cookie(), id, ttl))
            .finish())
    }

    /// A call to the token endpoint with the client's credentials: `None`
    /// when the safekeeper refused the grant.
    async fn token(&self, form: &[(&str, &str)]) -> Result<Option<TokenResponse>, Error> {
        let r = self
            .http
            .post(format!("{}/oauth2/token", self.config.safekeeper_url))
            .basic_auth(
                &self.config.client_id,
                Some(self.config.client_secret.expose_secret()),
            )
            .form(form)
            .send()
            .await
            .map_err(|e| Error::Safekeeper(e.to_string()))?;
        let status = r.status();
        if status.is_server_error() {
            return Err(Error::Safekeeper(format!(
                "the token endpoint answered {status}"
            )));
        }
        if !status.is_success() {
            let body = r.text().await.unwrap_or_default();
            tracing::warn!(%status, body, "the safekeeper refused a dashboard grant");
            return Ok(None);
        }
        r.json()
            .await
            .map(Some)
            .map_err(|e| Error::Safekeeper(format!("an unreadable token response: {e}")))
    }

    /// The access token's claims, if it is valid and this client's;
    /// `Err(None)` when it is not, `Err(Some)` when it cannot be told.
    async fn verify(
        &self,
        verifier: &Verifier,
        token: &str,
    ) -> Result<AccessClaims, Option<Error>> {
        match verifier.verify::<AccessClaims>(token).await {
            Ok(c) if c.client_id == self.config.client_id => Ok(c),
            Ok(_) => Err(None),
            Err(TokenError::KeysUnavailable) => Err(Some(Error::KeysUnavailable)),
            Err(_) => Err(None),
        }
    }

    /// The session of this browser's cookie, its access token verified
    /// (refreshed first when it expired): `None` when there is none, or no
    /// longer one (the page then offers to sign in).
    pub async fn session(
        &self,
        pool: &PgPool,
        verifier: &Verifier,
        req: &HttpRequest,
    ) -> Result<Option<Session>, Error> {
        let Some(id) = req
            .cookie(&self.config.session_cookie())
            .map(|c| c.value().to_owned())
        else {
            return Ok(None);
        };
        let hash = digest(&id);
        let h = hash.clone();
        let Some(row) = with_conn(pool, move |c| -> Result<_, Error> {
            Ok(store::session(c, &h)?)
        })
        .await?
        else {
            return Ok(None);
        };
        let session = |claims: AccessClaims| Session {
            claims,
            name: row.name.clone(),
            csrf: csrf_of(&id),
        };
        let sealer = Sealer::of_session(&id);
        let access = sealer.open(Kind::Access, &row.access_token);
        let refresh = match &row.refresh_token {
            Some(r) => sealer.open(Kind::Refresh, r).map(Some),
            None => Some(None),
        };
        let (Some(access), Some(refresh)) = (access, refresh) else {
            // Tampered with, or not sealed by this session: it ends.
            tracing::warn!(subject = %row.subject, "a dashboard session's tokens did not open; ending it");
            with_conn(pool, move |c| -> Result<_, Error> {
                Ok(store::delete_session(c, &hash)?)
            })
            .await?;
            return Ok(None);
        };
        match self.verify(verifier, &access).await {
            Ok(claims) => return Ok(Some(session(claims))),
            Err(Some(e)) => return Err(e),
            Err(None) => {}
        }
        // Expired (or otherwise no longer good): refresh, or end it.
        let refreshed = match &refresh {
            Some(rt) => {
                self.token(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
                    .await?
            }
            None => None,
        };
        let claims = match refreshed {
            Some(t) => match self.verify(verifier, &t.access_token).await {
                Ok(claims) => {
                    let (at, rt) = seal_tokens(&sealer, &t)?;
                    let h = hash.clone();
                    with_conn(pool, move |c| -> Result<(), Error> {
                        Ok(store::update_tokens(c, &h, &at, rt.as_deref())?)
                    })
                    .await?;
                    Some(claims)
                }
                Err(Some(e)) => return Err(e),
                Err(None) => None,
            },
            None => None,
        };
        match claims {
            Some(c) => Ok(Some(session(c))),
            None => {
                with_conn(pool, move |c| -> Result<_, Error> {
                    Ok(store::delete_session(c, &hash)?)
                })
                .await?;
                Ok(None)
            }
        }
    }

    /// `POST /dashboard/signout` (form with `csrf`): ends the session here
    /// and its grant at the safekeeper, then back to the landing page.
    /// Without the session's CSRF token: 403, and nothing ends.
    pub async fn sign_out(
        &self,
        pool: &PgPool,
        req: &HttpRequest,
        form: &HashMap<String, String>,
    ) -> HttpResponse {
        let Some(id) = req
            .cookie(&self.config.session_cookie())
            .map(|c| c.value().to_owned())
        else {
            return to_landing();
        };
        let sent = form.get("csrf").map(String::as_str).unwrap_or("");
        if !equal(sent, &csrf_of(&id)) {
            return html::message(
                StatusCode::FORBIDDEN,
                "Sign-out refused",
                "This sign-out did not come from your dashboard's page. Use its Sign out button.",
            );
        }
        let hash = digest(&id);
        let row = match with_conn(pool, move |c| -> Result<_, Error> {
            Ok(store::delete_session(c, &hash)?)
        })
        .await
        {
            Ok(r) => r,
            Err(e) => return e.page(),
        };
        if let Some(row) = row {
            // The refresh token first: revoking it ends the grant, and with
            // it every access token of the session.
            let sealer = Sealer::of_session(&id);
            let tokens = [
                row.refresh_token
                    .as_deref()
                    .and_then(|r| sealer.open(Kind::Refresh, r)),
                sealer.open(Kind::Access, &row.access_token),
            ];
            for token in tokens.iter().flatten() {
                if let Err(e) = self.revoke(token).await {
                    tracing::warn!(error = %e, "revoking a dashboard token failed");
                }
            }
            tracing::info!(subject = %row.subject, "dashboard session ended");
        }
        let mut r = to_landing();
        let _ = r.add_cookie(&self.removal(self.config.session_cookie()));
        r
    }

    async fn revoke(&self, token: &str) -> Result<(), Error> {
        let r = self
            .http
            .post(format!("{}/oauth2/revoke", self.config.safekeeper_url))
            .basic_auth(
                &self.config.client_id,
                Some(self.config.client_secret.expose_secret()),
            )
            .form(&[("token", token)])
            .send()
            .await
            .map_err(|e| Error::Safekeeper(e.to_string()))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(Error::Safekeeper(format!(
                "the revocation endpoint answered {}",
                r.status()
            )))
        }
    }
}

fn to_landing() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// A callback this browser did not begin (wrong or missing `state`).
fn forged() -> HttpResponse {
    html::message(
        StatusCode::BAD_REQUEST,
        "Sign-in refused",
        "This sign-in did not start in this browser. Please sign in again from the dashboard.",
    )
}

/// The page for someone signed in (or refused by the safekeeper) without
/// the scope the dashboard needs.
pub fn refused() -> HttpResponse {
    html::message(
        StatusCode::FORBIDDEN,
        "Not allowed",
        "Your account may not see this dashboard.",
    )
}

/// The pages when `DASHBOARD_CLIENT_ID` is not set.
pub fn not_configured() -> HttpResponse {
    html::message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in not configured",
        "This dashboard has no OAuth2 client at the safekeeper yet (DASHBOARD_CLIENT_ID).",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_the_base64url_sha256_of_the_verifier() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn random_tokens_are_valid_pkce_verifiers_and_differ() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn the_csrf_token_depends_on_the_session() {
        assert_ne!(csrf_of("a"), csrf_of("b"));
        assert!(equal(&csrf_of("a"), &csrf_of("a")));
    }
}
