//! Black-box tests of the user directory: the real app on a free port, its
//! own fresh database, the real broker; a real authenticator and
//! safekeeper, or a local server speaking the WorkOS wire format.

mod bad_input;
mod control_characters;
mod fake_workos;
mod helpers;
mod imports;
mod member_changes;
mod openapi_routes;
mod org_events;
mod orgs;
mod platform_endpoints;
mod refresh;
mod retention;
mod sign_in;
mod users;
mod webhooks;
mod workos;
