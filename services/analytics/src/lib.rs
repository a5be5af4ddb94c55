//! The analytics service: management's reports (today's earnings, the
//! number of workers with a negative balance, the most expensive task of
//! each day, week or month), read from aggregates kept as `task.v1` and
//! `accounting.transaction.v1` are applied; for admins only
//! (`read:analytics`), behind the safekeeper's access tokens, with a users
//! read model fed by Kafka.

pub mod auth;
pub mod config;
pub mod consumer;
pub mod domain;
pub mod error;
pub mod routes;
pub mod startup;
pub mod state;
pub mod store;
