//! Black-box tests of the notifier: a real broker, a database each, and
//! an SMTP sink (`testkit::SmtpSink`) as its relay.

mod delivery;
mod helpers;
mod openapi_routes;
mod platform_endpoints;
mod registration;
mod retries;
mod store;
