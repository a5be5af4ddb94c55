use platform::{
    db::PgPool,
    events::OutboxSignal,
    jwt::{TokenCache, Verifier},
    revocation::Revocations,
};

use crate::{config::Settings, domain::Calendar};

/// Everything a handler may need, shared by all workers.
pub struct AppState {
    pub pool: PgPool,
    pub settings: Settings,
    /// The dashboard's sign-in, when configured.
    pub dashboard: Option<dashboard::Dashboard>,
    /// Business days and the close's hour.
    pub calendar: Calendar,
    /// The safekeeper's access tokens (remote JWKS, cached).
    pub access: Verifier,
    /// Access tokens already verified, with their claims.
    pub tokens: TokenCache,
    /// Revoked tokens, grants, clients and users (`oauth.revocation.v1`).
    pub revocations: Revocations,
    /// Wakes the outbox relay after a commit that wrote events.
    pub outbox: OutboxSignal,
}
