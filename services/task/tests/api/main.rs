//! Black-box tests of the task service, with a real authenticator and
//! safekeeper beside it (real HTTP, real broker, a database each).

mod control_characters;
mod helpers;
mod journey;
mod platform_endpoints;
mod read_model;
mod replicas;
mod summary;
mod tokens;
mod validation;
