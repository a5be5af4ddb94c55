//! Whose address a request counts against in the throttle.
//!
//! - By default, the TCP peer's.
//! - Behind proxies listed in `TRUSTED_PROXIES`, the right-most address of
//!   `X-Forwarded-For` that is not one of them ([`platform::address`]):
//!   every proxy appends the address it saw, so the left-most entries are
//!   whatever the client chose to send.
//! - A first-party sign-in page that relays its end user's login (the
//!   safekeeper's `/oauth2/login`, the directory's `/admin/login`) names that
//!   user's address in `X-End-User-Address`, and proves who it is with an
//!   access token carrying `login:relay`. From anyone else the header means
//!   nothing.

use std::net::IpAddr;

use actix_web::HttpRequest;
use platform::jwt::{END_USER_ADDRESS_HEADER, LOGIN_RELAY_SCOPE};

use crate::{auth, error::ApiError, state::AppState};

/// The address a request counts against: the relayed end user's when a
/// relaying service proves itself, otherwise the connection's.
pub async fn of_request(req: &HttpRequest, state: &AppState) -> Result<String, ApiError> {
    if req
        .headers()
        .contains_key(actix_web::http::header::AUTHORIZATION)
    {
        let claims = auth::service_token(req, state).await?;
        if !claims.has_scope(LOGIN_RELAY_SCOPE) {
            return Err(ApiError::Forbidden(format!(
                "the access token lacks {LOGIN_RELAY_SCOPE}"
            )));
        }
        let relayed = req
            .headers()
            .get(END_USER_ADDRESS_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "a relayed request names its end user's address in {END_USER_ADDRESS_HEADER}"
                ))
            })?;
        return Ok(relayed.to_canonical().to_string());
    }
    Ok(connection_address(req, state))
}

/// The connection's client address (see the module's doc).
pub fn connection_address(req: &HttpRequest, state: &AppState) -> String {
    state
        .settings
        .trusted_proxies
        .of_request(req)
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".into())
}
