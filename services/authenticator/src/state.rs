use std::sync::Arc;

use platform::{
    db::PgPool,
    events::OutboxSignal,
    jwt::{KeyRing, Verifier},
    revocation::Revocations,
};

use crate::{config::Settings, hashing::Hasher, ratelimit::Throttle};

/// Everything a handler may need, shared by all workers.
pub struct AppState {
    pub pool: PgPool,
    pub settings: Settings,
    pub hasher: Hasher,
    pub keys: Arc<KeyRing>,
    pub sessions: Verifier,
    /// The safekeeper's access tokens (remote JWKS).
    pub access: Verifier,
    /// Guesses and sign-ups, counted per account and address.
    pub throttle: Throttle,
    pub outbox: OutboxSignal,
    /// Revoked access tokens (`oauth.revocation.v1`), refused in `auth`.
    pub revocations: Revocations,
}
