//! The access-rule service: events about users in, can-message and
//! can-purchase checks out, each rule guarded by a tripwire.

pub mod auth;
pub mod cache;
pub mod config;
pub mod consumer;
pub mod domain;
pub mod error;
pub mod producers;
pub mod routes;
pub mod startup;
pub mod state;
pub mod store;
pub mod tripwire;
pub mod writer;
