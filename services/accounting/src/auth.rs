//! Who is calling, and whether they may: the `resource-server` crate's
//! extractors (an access token of the safekeeper, then the users read
//! model; see [`resource_server::auth`]) with the accounting service's
//! scopes and rule.
//!
//! A token of a client (client credentials: `sub` is the client id) has no
//! user behind it: it may read any ledger (`su_read:accounting`) and run a
//! close (`close:accounting`), never stand for a worker.

use resource_server::scope;
use uuid::Uuid;

use crate::{error::ApiError, state::AppState};

pub use resource_server::{auth::AuthError, Scope};

pub const READ: &str = "read:accounting";
pub const SU_READ: &str = "su_read:accounting";
pub const CLOSE: &str = "close:accounting";

scope!(
    /// `su_read:accounting`: anyone's ledger, the earnings.
    SuReadAccounting,
    SU_READ
);
scope!(
    /// `close:accounting`: run a day's close.
    CloseAccounting,
    CLOSE
);

resource_server::resource_server!(AppState, "accounting");

/// The accounting service's rule on ledgers.
pub trait MayRead {
    /// May read `account`'s balance and ledger: their own with
    /// `read:accounting`, anyone's with `su_read:accounting`.
    fn may_read(&self, account: Uuid) -> Result<(), ApiError>;
}

impl MayRead for Authenticated {
    fn may_read(&self, account: Uuid) -> Result<(), ApiError> {
        if self.holds(SU_READ) || (self.account() == Some(account) && self.holds(READ)) {
            return Ok(());
        }
        if self.account() == Some(account) {
            return Err(ApiError::MissingScope(READ));
        }
        Err(ApiError::MissingScope(SU_READ))
    }
}
