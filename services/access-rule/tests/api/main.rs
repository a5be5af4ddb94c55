//! Black-box tests of the access-rule service: the real app on a free port,
//! its own fresh database, the real broker.

mod admin;
mod bad_input;
mod check_cache;
mod concurrency;
mod control_characters;
mod group_commit;
mod helpers;
mod iam_consumer;
mod idempotency;
mod openapi_routes;
mod overload;
mod platform_endpoints;
mod producers;
mod real_tokens;
mod restart;
mod seed;
mod tripwire;
