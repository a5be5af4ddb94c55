//! The notifier: consumes `notification.v1` and sends each notification
//! once, as mail over SMTP, retrying with back-off.

pub mod config;
pub mod consumer;
pub mod error;
pub mod mail;
pub mod routes;
pub mod sender;
pub mod startup;
pub mod state;
pub mod store;
