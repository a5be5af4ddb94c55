//! Who is calling, and whether they may: the `resource-server` crate's
//! extractors (an access token of the safekeeper, then the users read
//! model; see [`resource_server::auth`]) with the task service's scopes.
//! Both steps are served from this replica's memory when they can be
//! (`cache`: a token already verified, until it expires; a user's row,
//! dropped on every change of it).
//!
//! A token of a client (client credentials: `sub` is the client id) has no
//! user behind it; it may only read (`su_read:task`).
//!
//! A token the safekeeper revoked (by itself, with its grant, its client or
//! its user: `oauth.revocation.v1`) is refused with 401 on every request,
//! cached or not (`platform::revocation`: a few hash lookups).

use platform::{coherent::Lookup, db::with_conn};
use resource_server::scope;
use uuid::Uuid;

use crate::{state::AppState, store};

pub use resource_server::{auth::AuthError, Scope};

pub const READ: &str = "read:task";
pub const SU_READ: &str = "su_read:task";
pub const EDIT: &str = "edit:task";
pub const SU_EDIT: &str = "su_edit:task";
pub const CREATE: &str = "create:task";
pub const DELETE: &str = "delete:task";

scope!(ReadTask, READ);
scope!(SuReadTask, SU_READ);
scope!(EditTask, EDIT);
scope!(SuEditTask, SU_EDIT);
scope!(CreateTask, CREATE);
scope!(DeleteTask, DELETE);

resource_server::resource_server!(AppState, "task", store::User, |state, id| {
    cached_user(state, id)
});

/// A user or a client whose token carries `S` (a read-only scope).
pub type Reader<S> = Caller<S>;

/// The read model's row of `id`: from this replica's cache when it holds
/// it (see `cache`), else from the database (and then kept).
async fn cached_user(state: &AppState, id: Uuid) -> Result<Option<store::User>, AuthError> {
    let miss = match state.users.lookup(&id, &()) {
        Lookup::Hit(u) => return Ok(Some(u)),
        miss => miss,
    };
    let u = with_conn(&state.pool, move |c| {
        store::user(c, id).map_err(AuthError::from)
    })
    .await?;
    if let (Lookup::Miss(generation), Some(u)) = (miss, &u) {
        state.users.fill(id, (), u.clone(), generation);
    }
    Ok(u)
}
