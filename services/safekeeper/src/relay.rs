//! The safekeeper's own `login:relay` token. Apart from `tokens` (which
//! needs the service's state), so that the state can hold it without the
//! two modules importing each other.

use std::sync::Mutex;

use chrono::Utc;
use platform::jwt::{AccessClaims, KeyRing, ACCESS_TYP, LOGIN_RELAY_SCOPE};
use uuid::Uuid;

/// `sub` and `client_id` of the safekeeper's own tokens.
pub const SELF_CLIENT_ID: &str = "safekeeper";
/// How long the safekeeper's `login:relay` token lives, and how long
/// before its expiry it is signed anew.
const RELAY_TTL_SECONDS: i64 = 300;
const RELAY_RENEW_SECONDS: i64 = 60;

/// The safekeeper's own access token with `login:relay`, sent beside every
/// login it relays to the authenticator so that the end user's address it
/// names is believed. One per process, signed anew before it expires.
#[derive(Default)]
pub struct RelayToken(Mutex<Option<(String, i64)>>);

impl RelayToken {
    /// The token, signed anew with `keys` for `issuer` and `audience` when
    /// the one held is close to its expiry.
    pub fn get(&self, issuer: &str, audience: &str, keys: &KeyRing) -> anyhow::Result<String> {
        let now = Utc::now().timestamp();
        let mut cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((token, exp)) = cached.as_ref() {
            if exp - now > RELAY_RENEW_SECONDS {
                return Ok(token.clone());
            }
        }
        let claims = AccessClaims {
            iss: issuer.to_owned(),
            sub: SELF_CLIENT_ID.to_owned(),
            aud: audience.to_owned(),
            client_id: SELF_CLIENT_ID.to_owned(),
            scope: LOGIN_RELAY_SCOPE.to_owned(),
            iat: now,
            exp: now + RELAY_TTL_SECONDS,
            jti: Uuid::now_v7().to_string(),
            username: None,
            sid: None,
        };
        let token = keys.sign(ACCESS_TYP, &claims)?;
        *cached = Some((token.clone(), claims.exp));
        Ok(token)
    }
}
