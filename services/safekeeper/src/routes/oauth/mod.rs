//! The OAuth2 authorization server: authorization-code flow with PKCE
//! (RFC 6749, RFC 7636, RFC 9700), token endpoint with refresh rotation and
//! client credentials, introspection (RFC 7662), revocation (RFC 7009),
//! metadata (RFC 8414) and the JWKS. Each endpoint module serves one
//! audience and registers its own routes: browsers (`authorize`, `login`,
//! on top of `request`), clients (`token`, on top of `client_auth`),
//! resource servers (`introspection`) and anyone (`metadata`).

mod authorize;
mod client_auth;
mod introspection;
mod login;
mod metadata;
mod request;
mod token;

use std::collections::HashMap;

use actix_web::web;

/// The raw parameters of a query string or a form, as they came.
type Params = HashMap<String, String>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    authorize::configure(cfg);
    login::configure(cfg);
    token::configure(cfg);
    introspection::configure(cfg);
    metadata::configure(cfg);
}
