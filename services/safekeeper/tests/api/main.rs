//! Black-box tests of the safekeeper, with a real authenticator beside it
//! (real HTTP, real broker, a database each).

mod admin;
mod browser;
mod code_flow;
mod control_characters;
mod helpers;
mod least_privilege;
mod openapi_routes;
mod revocations;
mod seed;
mod sign_in;
mod tokens;
