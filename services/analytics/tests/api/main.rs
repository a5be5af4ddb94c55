//! Black-box tests of the analytics service, with a real authenticator
//! and safekeeper beside it (real HTTP, real broker, a database each).
//! Task and accounting events are published by the tests themselves, as
//! the task and accounting services would (`source.service` "task",
//! "accounting").

mod access;
mod balances;
mod dashboard;
mod earnings;
mod helpers;
mod migrations;
mod openapi_routes;
mod reversal;
mod tasks;
mod validation;
