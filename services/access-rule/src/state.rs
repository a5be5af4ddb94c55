use std::sync::Arc;

use platform::{
    db::PgPool,
    events::OutboxSignal,
    jwt::{TokenCache, Verifier},
    revocation::Revocations,
};

use crate::{
    cache::CheckCache,
    config::Settings,
    producers::RateLimits,
    tripwire::{Suspensions, TripwireChecks},
    writer::EventWriters,
};

/// Everything a handler may need, shared by all workers.
pub struct AppState {
    pub pool: PgPool,
    pub settings: Settings,
    /// Which rules are suspended by their tripwire, so that a check is one
    /// primary-key read of the user.
    pub suspensions: Arc<Suspensions>,
    /// What the checks read, kept coherent by the database's notifications.
    pub cache: Arc<CheckCache>,
    /// The tripwire checks after restricting events; they share the
    /// suspensions above, the pool and the outbox signal.
    pub tripwire: TripwireChecks,
    /// Verifies the authenticator's session tokens of operators.
    pub sessions: Verifier,
    /// Verifies the safekeeper's access tokens of producers (and readers,
    /// with `REQUIRE_READ_TOKEN`).
    pub access: Verifier,
    /// Access tokens already verified, until they expire.
    pub tokens: TokenCache,
    /// Each producer's rate.
    pub producers: RateLimits,
    /// Access tokens the safekeeper revoked (`oauth.revocation.v1`).
    pub revocations: Revocations,
    pub outbox: OutboxSignal,
    /// Group commit of events (`None`: each request commits alone).
    pub writers: Option<EventWriters>,
}
