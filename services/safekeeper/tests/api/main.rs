//! Black-box tests of the safekeeper, with a real authenticator beside it
//! (real HTTP, real broker, a database each).

mod admin;
mod browser;
mod code_flow;
mod helpers;
mod seed;
mod tokens;
