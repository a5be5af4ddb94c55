//! The platform's shared crate: everything a service needs that is not its
//! own business. No service logic lives here.

pub mod address;
pub mod admission;
pub mod coherent;
pub mod config;
pub mod db;
pub mod dlq;
pub mod events;
pub mod html;
pub mod input;
pub mod jwt;
pub mod kafka;
pub mod metrics;
pub mod problem;
pub mod retention;
pub mod revocation;
pub mod routecheck;
pub mod server;
pub mod telemetry;

pub use problem::Problem;
