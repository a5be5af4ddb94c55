//! Black-box tests of the task service, with a real authenticator and
//! safekeeper beside it (real HTTP, real broker, a database each).

mod control_characters;
mod forged_events;
mod helpers;
mod journey;
mod openapi_routes;
mod platform_endpoints;
mod poison;
mod prices_and_events;
mod read_model;
mod replicas;
mod revocation;
mod summary;
mod task_changes;
mod tokens;
mod validation;
