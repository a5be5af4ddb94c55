use chrono_tz::Tz;
use platform::{
    db::PgPool,
    jwt::{TokenCache, Verifier},
    revocation::Revocations,
};

use crate::config::Settings;

/// Everything a handler may need, shared by all workers.
pub struct AppState {
    pub pool: PgPool,
    pub settings: Settings,
    /// The dashboard's sign-in, when configured.
    pub dashboard: Option<dashboard::Dashboard>,
    /// The zone that says which business day is today.
    pub zone: Tz,
    /// The safekeeper's access tokens (remote JWKS, cached).
    pub access: Verifier,
    /// Access tokens already verified, with their claims.
    pub tokens: TokenCache,
    /// Revoked tokens, grants, clients and users (`oauth.revocation.v1`).
    pub revocations: Revocations,
}

impl AppState {
    /// Today's business day.
    pub fn today(&self) -> chrono::NaiveDate {
        chrono::Utc::now().with_timezone(&self.zone).date_naive()
    }
}
