use std::sync::Arc;

use platform::{
    db::PgPool,
    events::OutboxSignal,
    jwt::{TokenCache, Verifier},
    revocation::Revocations,
};

use crate::{
    cache::{PageCache, UserCache},
    catalogue::Catalogue,
    config::Settings,
};

/// Everything a handler may need, shared by all workers.
pub struct AppState {
    pub pool: PgPool,
    pub settings: Settings,
    /// Statuses, types, workflows: seeded, read once at start.
    pub catalogue: Arc<Catalogue>,
    /// The safekeeper's access tokens (remote JWKS, cached).
    pub access: Verifier,
    /// Access tokens already verified, with their claims.
    pub tokens: TokenCache,
    /// Callers' rows of the users read model (see `cache`).
    pub users: Arc<UserCache>,
    /// `/v1/task/own` response bodies (see `cache`).
    pub pages: Arc<PageCache>,
    /// Revoked tokens, grants, clients and users (`oauth.revocation.v1`).
    pub revocations: Revocations,
    /// Wakes the outbox relay after a commit that wrote `task.v1` events.
    pub outbox: OutboxSignal,
}
