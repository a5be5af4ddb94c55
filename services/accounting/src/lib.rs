//! The accounting service: an append-only ledger per worker fed by
//! `task.v1` (assignment fees, completion rewards), balances, the daily
//! close that pays positive balances out and asks for a mail, and
//! management's earnings; behind the safekeeper's access tokens, with a
//! users read model fed by Kafka.

pub mod auth;
pub mod close;
pub mod config;
pub mod consumer;
pub mod domain;
pub mod error;
pub mod routes;
pub mod startup;
pub mod state;
pub mod store;
