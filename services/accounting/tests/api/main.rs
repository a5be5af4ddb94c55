//! Black-box tests of the accounting service, with a real authenticator
//! and safekeeper beside it (real HTTP, real broker, a database each).
//! Task events are published by the tests themselves, as the task service
//! would (`source.service` "task").

mod access;
mod close;
mod dashboard;
mod earnings;
mod helpers;
mod ledger;
mod openapi_routes;
mod reversal;
mod validation;
