use std::sync::Arc;

use platform::{db::PgPool, jwt::Verifier};

use crate::{catalogue::Catalogue, config::Settings};

/// Everything a handler may need, shared by all workers.
pub struct AppState {
    pub pool: PgPool,
    pub settings: Settings,
    /// Statuses, types, workflows: seeded, read once at start.
    pub catalogue: Arc<Catalogue>,
    /// The safekeeper's access tokens (remote JWKS, cached).
    pub access: Verifier,
}
