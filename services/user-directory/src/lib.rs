//! The user directory: organizations (with their admins and tenant data),
//! users and memberships, kept in step with an identity provider (our
//! authenticator or WorkOS).

pub mod auth;
pub mod background;
pub mod changes;
pub mod config;
pub mod directory_config;
pub mod domain;
pub mod error;
pub mod import;
pub mod members;
pub mod org_token;
pub mod provider;
pub mod routes;
pub mod saga;
pub mod startup;
pub mod state;
pub mod store;
pub mod sync;
