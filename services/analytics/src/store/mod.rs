//! The read models in PostgreSQL. Synchronous diesel functions, called
//! through `platform::db::with_conn`.
//!
//! One file per aggregate: [`schema`] the tables; `transactions` the
//! transactions applied and the reports' aggregates; `top_rewards` the
//! most expensive tasks read from them; `tasks` the tasks' titles;
//! `users` the users read model (the `resource-server` crate's). Callers
//! use the re-exports below.

pub mod schema;
mod tasks;
mod top_rewards;
mod transactions;

pub use resource_server::users::{apply_roles, apply_user, user, AccountChange, User};
pub use tasks::apply_task;
pub use top_rewards::{most_expensive, most_expensive_per, PeriodTop, TopReward};
pub use transactions::{apply_transaction, earnings_of, kind_name, negative_balances};
