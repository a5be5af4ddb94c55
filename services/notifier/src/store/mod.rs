//! Deliveries in PostgreSQL. Synchronous diesel functions, called through
//! `platform::db::with_conn`.
//!
//! One file per aggregate: [`schema`] the table; `deliveries` recording a
//! notification, claiming due ones, and recording how an attempt went.
//! Callers use the re-exports below.

mod deliveries;
pub mod schema;

pub use deliveries::{
    claim_due, delivery, mark_failed, mark_sent, prune_sent, record, schedule_retry, Claimed,
    Delivery, NewDelivery, Status,
};
