//! The read models in PostgreSQL. Synchronous diesel functions, called
//! through `platform::db::with_conn`.
//!
//! One file per aggregate: [`schema`] the tables; `transactions` the
//! transactions applied and the reports' aggregates; `tasks` the tasks'
//! titles; `users` the users read model (the `resource-server` crate's). Callers use
//! the re-exports below.

pub mod schema;
mod tasks;
mod transactions;

pub use resource_server::users::{apply_roles, apply_user, user, AccountChange, User};
pub use tasks::apply_task;
pub use transactions::{
    apply_transaction, earnings_of, kind_name, negative_balances, top_rewards, TopReward,
};
