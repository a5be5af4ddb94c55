//! The ledger, the closes and the users read model in PostgreSQL.
//! Synchronous diesel functions, called through `platform::db::with_conn`.
//!
//! One file per aggregate: [`schema`] the tables; `ledger` the entries and
//! balances (and their events); `closes` a day's close (and its mails);
//! `users` the users read model (the `resource-server` crate's). Callers use
//! the re-exports below.

mod closes;
mod ledger;
pub mod schema;

pub use closes::{close_day, is_closed, Closed, Paid};
pub use ledger::{
    append, append_many, balance_of, day_totals, entries, kind_name, unreversed_reward, DayTotals,
    Entry, NewEntry,
};
pub use resource_server::users::{self, apply_roles, apply_user, user, AccountChange, User};
