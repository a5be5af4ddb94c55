use std::sync::Arc;

use platform::{
    db::PgPool,
    events::OutboxSignal,
    jwt::{KeyRing, Verifier},
};
use tokio::sync::Notify;

use crate::{
    config::Settings, directory_config::ConfigFile, members::MemberCache, provider::Provider,
};

/// Everything a handler or a background task may need, shared by all.
pub struct AppState {
    pub pool: PgPool,
    pub settings: Settings,
    pub provider: Provider,
    /// Signs the organization admins' tokens.
    pub keys: Arc<KeyRing>,
    /// Verifies them (locally).
    pub org_tokens: Verifier,
    /// Tokens verified already.
    pub token_cache: crate::org_token::TokenCache,
    /// `GET /v1/users/{id}` answers (see `members`).
    pub members: Arc<MemberCache>,
    pub config: ConfigFile,
    pub outbox: OutboxSignal,
    /// Wakes the applier of stored provider events.
    pub events: Notify,
    /// Wakes the reconciler (queued provider work).
    pub reconcile: Notify,
}
