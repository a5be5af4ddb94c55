//! The task service: tasks, workflows with approvals and reports, behind
//! the safekeeper's access tokens, with a users read model fed by Kafka.

pub mod auth;
pub mod cache;
pub mod catalogue;
pub mod config;
pub mod consumer;
pub mod domain;
pub mod error;
pub mod rebuild;
pub mod routes;
pub mod startup;
pub mod state;
pub mod store;
