//! The authenticator: accounts and credentials, session tokens, JWKS.

pub mod address;
pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod hashing;
pub mod ratelimit;
pub mod routes;
pub mod startup;
pub mod state;
pub mod store;

pub use routes::public as routes_support;
