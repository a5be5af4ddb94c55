//! The claims of the platform's tokens: the authenticator's session tokens
//! and the safekeeper's access tokens (RFC 9068), and the rules every
//! verifier applies to them. Signing and verifying live in `platform::jwt`.

use serde::{Deserialize, Serialize};

/// `typ` of the authenticator's session tokens.
pub const SESSION_TYP: &str = "session+jwt";
/// `typ` of the safekeeper's access tokens (RFC 9068).
pub const ACCESS_TYP: &str = "at+jwt";

/// Claims of a session token issued by the authenticator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionClaims {
    pub iss: String,
    pub sub: String,
    pub username: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The account's session epoch when the token was issued. A token
    /// whose `sep` is below the account's current `session_epoch` (carried
    /// on `iam.user.v1`) has been ended by a password change, a
    /// deactivation or a logout of every device. Tokens issued before the
    /// claim existed read as 0.
    #[serde(default)]
    pub sep: i64,
}

/// The header in which a first-party sign-in page (the safekeeper's
/// `/oauth2/login`, the directory's `/admin/login`) tells the
/// authenticator the address of the end user it signs in. The
/// authenticator honours it only beside an access token carrying
/// [`LOGIN_RELAY_SCOPE`]; from anyone else it is ignored.
pub const END_USER_ADDRESS_HEADER: &str = "x-end-user-address";
/// The scope that lets a service relay an end user's sign-in (and name the
/// end user's address in [`END_USER_ADDRESS_HEADER`]).
pub const LOGIN_RELAY_SCOPE: &str = "login:relay";

/// Whether a session token is still good for an account whose current
/// session epoch is `epoch` and whose ended single sessions (logouts of one
/// device) are `ended`: the one rule every verifier of session tokens
/// applies, with the state it learned from `iam.user.v1`.
pub fn session_still_valid(claims: &SessionClaims, epoch: i64, ended: &[String]) -> bool {
    claims.sep >= epoch && !ended.iter().any(|j| j == &claims.jti)
}

/// Claims of an access token issued by the safekeeper (RFC 9068).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessClaims {
    pub iss: String,
    /// The user's account id, or the client id for client credentials.
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    /// Space-separated scopes.
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The grant (authorization) the token came from, when it came from
    /// one; revoking the grant revokes the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl AccessClaims {
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_ascii_whitespace()
    }

    pub fn has_scope(&self, wanted: &str) -> bool {
        self.scopes().any(|s| s == wanted)
    }
}
