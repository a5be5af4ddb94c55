//! The ledger, the closes and the users read model in PostgreSQL.
//! Synchronous diesel functions, called through `platform::db::with_conn`.
//!
//! One file per aggregate: [`schema`] the tables; `ledger` the entries and
//! balances (and their events); `closes` a day's close (and its mails);
//! `users` the users read model. Callers use the re-exports below.

mod closes;
mod ledger;
pub mod schema;
mod users;

pub use closes::{close_day, is_closed, Closed, Paid};
pub use ledger::{append, balance_of, day_totals, entries, kind_name, DayTotals, Entry, NewEntry};
pub use users::{apply_roles, apply_user, user, AccountChange, User};
