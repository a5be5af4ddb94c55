//! Black-box tests of the authenticator: the real app on a free port, its
//! own fresh database, the real broker.

mod accounts;
mod admin;
mod batch;
mod control_characters;
mod events;
mod helpers;
mod openapi_routes;
mod platform_endpoints;
mod sign_in;
mod tokens;
