//! Who is calling, and whether they may: the `resource-server` crate's
//! extractors (an access token of the safekeeper, then the users read
//! model; see [`resource_server::auth`]) with the analytics service's
//! scope.
//!
//! Every report needs `read:analytics` (the admin role's). A token of a
//! client (client credentials: `sub` is the client id) that carries it
//! may read them too: there is no user behind it to check.

use resource_server::scope;

use crate::state::AppState;

pub use resource_server::{auth::AuthError, Scope};

pub const READ: &str = "read:analytics";

scope!(
    /// `read:analytics`: every report.
    ReadAnalytics,
    READ
);

resource_server::resource_server!(AppState, "analytics");
