//! The safekeeper: OAuth2 authorization server and scope-based RBAC.

pub mod auth;
pub mod clients;
pub mod config;
pub mod consumer;
pub mod crypto;
pub mod error;
pub mod grants;
pub mod rbac;
pub mod relay;
pub mod routes;
pub mod schema;
pub mod startup;
pub mod state;
pub mod tokens;
