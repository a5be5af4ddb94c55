use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use platform::{
    db::PgPool,
    events::OutboxSignal,
    jwt::{TokenCache, Verifier},
    revocation::Revocations,
};

use crate::{
    cache::CheckCache, config::Settings, domain::Rule, producers::RateLimits, store::RuleRow,
    tripwire::TripwireChecks, writer::EventWriters,
};

/// Everything a handler may need, shared by all workers.
pub struct AppState {
    pub pool: PgPool,
    pub settings: Settings,
    /// Which rules are suspended by their tripwire, so that a check is one
    /// primary-key read of the user.
    pub suspensions: Suspensions,
    /// What the checks read, kept coherent by the database's notifications.
    pub cache: Arc<CheckCache>,
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

/// This replica's copy of the rules' suspensions. Updated at once after a
/// trip or reset made here, and reloaded periodically for those made by
/// other replicas; a reload never replaces a newer version with an older.
#[derive(Default)]
pub struct Suspensions {
    by_rule: RwLock<[(i64, Option<DateTime<Utc>>); 3]>,
}

fn slot(rule: Rule) -> usize {
    match rule {
        Rule::ScamFlags => 0,
        Rule::CardZipRatio => 1,
        Rule::ChargebackRatio => 2,
    }
}

impl Suspensions {
    pub fn is_suspended(&self, rule: Rule, now: DateTime<Utc>) -> bool {
        let g = self.by_rule.read().unwrap_or_else(|p| p.into_inner());
        crate::domain::suspended(g[slot(rule)].1, now)
    }

    pub fn update(&self, row: &RuleRow) {
        let Some(rule) = row.rule() else { return };
        let mut g = self.by_rule.write().unwrap_or_else(|p| p.into_inner());
        let entry = &mut g[slot(rule)];
        if row.version >= entry.0 {
            *entry = (row.version, row.suspended_until);
        }
    }
}
