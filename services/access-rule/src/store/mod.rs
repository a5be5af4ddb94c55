//! Users, cards, the event log, restrictions and the rules' tripwires in
//! PostgreSQL. Synchronous diesel functions, called through
//! `platform::db::with_conn`.
//!
//! Concurrency: every change to a user runs in one transaction that first
//! locks the user's row (`INSERT .. ON CONFLICT DO NOTHING`, then
//! `SELECT .. FOR UPDATE`), so concurrent events for one user are judged one
//! after the other, each seeing all the earlier ones. An event locks at most its
//! user's row and then one population shard, so events cannot deadlock.
//! A rule's tripwire is checked after the restricting event
//! committed (see [`check_tripwire`]). Every restriction, lift, trip and reset writes its
//! `access.restriction.v1` event to the outbox in the same transaction.
//!
//! One file per aggregate: [`schema`] the tables; `users` a user's row and
//! what the checks read; `cards` a user's cards; `restrictions` the
//! restriction log and the outbox events of users' changes; `events` one
//! event applied alone; `batch` the group commit of many; `population` the
//! tripwire's population; `rules` the rules' state and the tripwire's count;
//! `accounts` the account stream's state; `operator` what operators read and
//! change by hand. Callers use the re-exports below.

mod accounts;
mod batch;
mod cards;
mod events;
mod operator;
mod population;
mod restrictions;
mod rules;
pub mod schema;
mod users;

pub use accounts::{apply_account, apply_superuser, is_superuser, ACCOUNT_INACTIVE};
pub use batch::{apply_batch, BatchError, BatchMode, BatchOutcome};
pub use cards::CardRow;
pub use events::{apply_event, prune_events, EventResult, Outcome, EVENT_ID_UNIQUE};
pub use operator::{lift, user_report, UserReport};
pub use population::{population_size, writer_for};
pub use restrictions::{LogRow, RestrictionChange};
pub use rules::{all_rules, check_tripwire, reset_rule, rules_report, RuleRow, TripwireCount};
pub use users::{check_page, restrictions, UserRow};
