//! The sign-in form of the browser's flow (`POST /oauth2/login`): checks
//! the credentials with the authenticator and sets the login cookie, with
//! what keeps forms from other sites out.

use actix_web::{
    cookie::{Cookie, SameSite},
    http::{header, StatusCode},
    web, HttpRequest, HttpResponse,
};
use platform::jwt::END_USER_ADDRESS_HEADER;
use serde_json::json;

use super::{request::AuthorizationRequest, Params};
use crate::{crypto, routes::pages, state::AppState};

/// The login cookie: the authenticator's session token, once signed in.
pub const SESSION_COOKIE: &str = "sk_session";
/// The random value the sign-in form's CSRF token is bound to (there is no
/// session before sign-in: a double-submit cookie).
pub const LOGIN_CSRF_COOKIE: &str = "sk_login";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth2/login", web::post().to(login));
}

/// Ties the sign-in form to this browser's login cookie and this request.
fn login_csrf(cookie: &str, return_to: &str) -> String {
    crypto::digest(&format!("login|{cookie}|{return_to}"))
}

/// The sign-in page for `request`, its CSRF token bound to the browser's
/// `sk_login` cookie: the one it has (so that two open sign-in pages both
/// work), or a new one set with the page.
pub(super) fn login_page(
    req: &HttpRequest,
    state: &AppState,
    request: &AuthorizationRequest,
    error: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    let return_to = request.query();
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
            tracing::error!(error = %platform::problem::chain(&e), "the sign-in cookie cannot be set");
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

pub(super) fn forged_form() -> HttpResponse {
    pages::error(
        StatusCode::FORBIDDEN,
        "This form has expired or did not come from this site. Start again.",
    )
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
    let params = match returning_to(&req, &state, &form) {
        Ok(p) => p,
        Err(BadForm::Forged) => return forged_form(),
        Err(BadForm::Tampered) => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "The sign-in form was tampered with.",
            )
        }
    };
    let request = match AuthorizationRequest::parse(&state, &params).await {
        Ok(r) => r,
        Err(refusal) => return refusal.respond(&state.settings.issuer),
    };
    let again = |msg: &str, status| login_page(&req, &state, &request, Some(msg), status);
    let (Some(username), Some(password)) = (form.get("username"), form.get("password")) else {
        return again("Enter your username and password.", StatusCode::BAD_REQUEST);
    };
    let session = match sign_in(&req, &state, username, password).await {
        Ok(s) => s,
        Err(failure) => return failure.page(again),
    };
    let cookie = Cookie::build(SESSION_COOKIE, session.token)
        .path("/oauth2")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.settings.secure_cookies())
        .max_age(actix_web::cookie::time::Duration::seconds(
            session.expires_in,
        ))
        .finish();
    HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((
            header::LOCATION,
            format!("/oauth2/authorize?{}", request.query()),
        ))
        .finish()
}

/// Why a sign-in form is refused before its credentials are looked at.
enum BadForm {
    /// It did not come from our own sign-in page.
    Forged,
    /// Its `return_to` is no query string.
    Tampered,
}

/// The authorization request a sign-in form carries (its `return_to`),
/// once the form is known to come from our own sign-in page.
fn returning_to(req: &HttpRequest, state: &AppState, form: &Params) -> Result<Params, BadForm> {
    if let Some(reason) = cross_site(req, &state.settings.origin) {
        tracing::warn!(reason, "a sign-in form from another site was refused");
        return Err(BadForm::Forged);
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
        return Err(BadForm::Forged);
    }
    web::Query::<Params>::from_query(&return_to)
        .map(web::Query::into_inner)
        .map_err(|_| BadForm::Tampered)
}

/// A session the authenticator opened: the login cookie's value and
/// lifetime (seconds).
struct Session {
    token: String,
    expires_in: i64,
}

/// Why the authenticator opened no session.
enum SignInFailure {
    WrongPassword,
    Inactive,
    /// Too many failed attempts, with the authenticator's `Retry-After`.
    Throttled(Option<header::HeaderValue>),
    /// The authenticator cannot be asked, or its answer makes no sense
    /// (the cause is logged).
    Unavailable,
}

impl SignInFailure {
    /// The browser's answer: the sign-in page again, saying what went
    /// wrong, or an error page when sign-in is unavailable.
    fn page(self, again: impl Fn(&str, StatusCode) -> HttpResponse) -> HttpResponse {
        match self {
            SignInFailure::WrongPassword => again(
                "The username or password is wrong.",
                StatusCode::UNAUTHORIZED,
            ),
            SignInFailure::Inactive => again("This account is deactivated.", StatusCode::FORBIDDEN),
            SignInFailure::Throttled(retry_after) => {
                let mut page = again(
                    "Too many failed attempts; wait a while and try again.",
                    StatusCode::TOO_MANY_REQUESTS,
                );
                if let Some(v) = retry_after {
                    page.headers_mut().insert(header::RETRY_AFTER, v);
                }
                page
            }
            SignInFailure::Unavailable => pages::error(
                StatusCode::BAD_GATEWAY,
                "Sign-in is unavailable right now; try again shortly.",
            ),
        }
    }
}

/// Asks the authenticator to sign `username` in, with our `login:relay`
/// token and the end user's address.
async fn sign_in(
    req: &HttpRequest,
    state: &AppState,
    username: &str,
    password: &str,
) -> Result<Session, SignInFailure> {
    let relay = state
        .relay
        .get(
            &state.settings.issuer,
            &state.settings.audience,
            &state.keys,
        )
        .map_err(|e| {
            tracing::error!(
                error = format!("{e:#}"),
                "the login relay token cannot be signed"
            );
            SignInFailure::Unavailable
        })?;
    let mut call = platform::telemetry::with_request_id(
        state
            .http
            .post(format!("{}/v1/login", state.settings.authenticator_url)),
    )
    .bearer_auth(relay)
    .json(&json!({"username": username, "password": password}));
    if let Some(ip) = state.settings.trusted_proxies.of_request(req) {
        call = call.header(END_USER_ADDRESS_HEADER, ip.to_string());
    }
    let answer = call.send().await.map_err(|e| {
        tracing::error!(error = %platform::problem::chain(&e), "the authenticator is unreachable");
        SignInFailure::Unavailable
    })?;
    let status = answer.status().as_u16();
    if status != 200 {
        return Err(refusal(status, answer).await);
    }
    let body: serde_json::Value = answer
        .json()
        .await
        .map_err(|_| SignInFailure::Unavailable)?;
    let (Some(token), expires_in) = (
        body["session_token"].as_str(),
        body["expires_in"].as_i64().unwrap_or(3600),
    ) else {
        return Err(SignInFailure::Unavailable);
    };
    Ok(Session {
        token: token.to_owned(),
        expires_in,
    })
}

/// What the authenticator's refusal (any status but 200) means for the
/// browser.
async fn refusal(status: u16, answer: reqwest::Response) -> SignInFailure {
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
    match (status, kind) {
        (401, "invalid-credentials") => SignInFailure::WrongPassword,
        (403, "account-inactive") => SignInFailure::Inactive,
        (429, _) => SignInFailure::Throttled(retry_after),
        (401 | 403, _) => {
            tracing::error!(
                status,
                problem,
                "the authenticator refused the safekeeper's login relay token; check its SAFEKEEPER_URL, SAFEKEEPER_ISSUER and ACCESS_TOKEN_AUDIENCE"
            );
            SignInFailure::Unavailable
        }
        _ => {
            tracing::error!(
                status,
                problem,
                "unexpected answer from the authenticator's login"
            );
            SignInFailure::Unavailable
        }
    }
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
