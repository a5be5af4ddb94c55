use std::sync::Arc;

use platform::{
    db::PgPool,
    events::OutboxSignal,
    jwt::{KeyRing, Verifier},
};

use crate::{clients::ClientCache, config::Settings, relay::RelayToken};

/// Everything a handler may need, shared by all workers.
pub struct AppState {
    pub pool: PgPool,
    pub settings: Settings,
    /// Signs access tokens.
    pub keys: Arc<KeyRing>,
    /// Verifies the authenticator's session tokens (its JWKS, cached).
    pub sessions: Verifier,
    /// Verifies our own access tokens.
    pub access: Verifier,
    pub http: reqwest::Client,
    pub outbox: OutboxSignal,
    /// Clients and their scopes, for the token endpoint (see `clients`).
    pub clients: Arc<ClientCache>,
    /// Our own `login:relay` token for the authenticator (see `tokens`).
    pub relay: RelayToken,
}
