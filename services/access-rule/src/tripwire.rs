//! Runs the tripwire checks after restricting events commit, coalesced per
//! rule: at most one check of a rule runs at a time in a replica, checks of
//! a rule start at least `TRIPWIRE_CHECK_INTERVAL_MS` apart, and a check
//! that started after a commit covers it. Under a burst of restrictions,
//! one count covers many events instead of one count each; a trip comes at
//! most an interval late.
//!
//! A restricting request waits for the check that covers it (and answers
//! `tripped` with its rule when that check tripped it, so every event the
//! tripping count took in says so) only when a trip is
//! possible: when the last count of this replica, plus every restriction
//! of the rule here since that count began, could exceed the threshold
//! (the count within a window only grows by new restrictions, and the
//! threshold only grows with the population). Far from the threshold,
//! the check runs in the background and the request answers at once. A
//! restriction made on another replica is that replica's to count, so
//! the one event that trips a rule may, with many replicas, answer
//! `tripped: []` while the trip is logged and published all the same.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering::SeqCst},
        Arc, Mutex as SyncMutex, RwLock,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use platform::{
    db::{with_conn, PgPool},
    events::OutboxSignal,
};
use tokio::sync::Mutex;

use crate::{
    domain::{trips, Rule, RulesConfig, TripwireConfig},
    error::ApiError,
    store::{self, RuleRow},
};

/// This replica's copy of the rules' suspensions. Updated at once after a
/// trip or reset made here, and reloaded periodically for those made by
/// other replicas; a reload never replaces a newer version with an older.
#[derive(Default)]
pub struct Suspensions {
    by_rule: RwLock<[(i64, Option<DateTime<Utc>>); 3]>,
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

/// The last count of a rule here, and the restrictions it covered.
#[derive(Clone, Copy)]
struct Counted {
    newly: i64,
    population: i64,
    covers: u64,
}

#[derive(Default)]
struct Slot {
    requested: AtomicU64,
    completed: AtomicU64,
    /// When the last check started; held while a check runs.
    running: Mutex<Option<Instant>>,
    /// `None` until a check counted, and after a check that did not
    /// (the rule suspended, the population at its minimum): then every
    /// restricting request waits.
    last: SyncMutex<Option<Counted>>,
    /// The restrictions (numbers, both ends included) covered by the last
    /// check that tripped the rule.
    tripped: SyncMutex<Option<(u64, u64)>>,
}

impl Slot {
    /// Whether the restriction numbered `mine` cannot have tripped the rule.
    fn cannot_trip(&self, mine: u64, t: &TripwireConfig) -> bool {
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.is_some_and(|c| {
            let since = i64::try_from(mine.saturating_sub(c.covers)).unwrap_or(i64::MAX);
            c.population > t.min_population
                && !trips(c.newly.saturating_add(since), c.population, t)
        })
    }
}

/// The tripwire checks of this replica. Cheap to clone (shared): a check
/// left to run in the background holds a clone.
#[derive(Clone)]
pub struct TripwireChecks(Arc<Checks>);

/// What the checks need, given at start-up rather than read from the
/// application's state.
struct Checks {
    slots: [Slot; 3],
    pool: PgPool,
    rules: RulesConfig,
    /// `TRIPWIRE_CHECK_INTERVAL_MS`.
    interval: Duration,
    /// Told of a trip at once.
    suspensions: Arc<Suspensions>,
    /// Nudged after a trip (its event is in the outbox).
    outbox: OutboxSignal,
}

fn slot(rule: Rule) -> usize {
    match rule {
        Rule::ScamFlags => 0,
        Rule::CardZipRatio => 1,
        Rule::ChargebackRatio => 2,
    }
}

impl TripwireChecks {
    pub fn new(
        pool: PgPool,
        rules: RulesConfig,
        interval: Duration,
        suspensions: Arc<Suspensions>,
        outbox: OutboxSignal,
    ) -> Self {
        Self(Arc::new(Checks {
            slots: Default::default(),
            pool,
            rules,
            interval,
            suspensions,
            outbox,
        }))
    }

    /// Call after a restriction by `rule` committed. True when the check
    /// covering it tripped the rule (see the module's documentation for
    /// when it answers at once, with the check left to run meanwhile).
    pub async fn after_restriction(&self, rule: Rule) -> Result<bool, ApiError> {
        let s = &self.0.slots[slot(rule)];
        let mine = s.requested.fetch_add(1, SeqCst) + 1;
        if s.cannot_trip(mine, &self.0.rules.tripwire) {
            let checks = self.clone();
            tokio::spawn(async move {
                if let Err(e) = checks.covered(rule, mine).await {
                    tracing::warn!(rule = %rule, error = %platform::problem::chain(&e), "tripwire check failed");
                }
            });
            return Ok(false);
        }
        self.covered(rule, mine).await
    }

    /// Returns once a check that started after restriction `mine` has run,
    /// this call's or another's; true when that check tripped the rule.
    async fn covered(&self, rule: Rule, mine: u64) -> Result<bool, ApiError> {
        let s = &self.0.slots[slot(rule)];
        let mut last_start = s.running.lock().await;
        if s.completed.load(SeqCst) >= mine {
            // A check that started after our commit has run.
            let tripped = *s.tripped.lock().unwrap_or_else(|p| p.into_inner());
            return Ok(tripped.is_some_and(|(from, to)| (from..=to).contains(&mine)));
        }
        let interval = self.0.interval;
        if let Some(wait) = last_start.and_then(|t| interval.checked_sub(t.elapsed())) {
            tokio::time::sleep(wait).await;
        }
        *last_start = Some(Instant::now());
        // Read after the pause: this check covers every commit until now.
        let covers = s.requested.load(SeqCst);
        let count = self.count(rule).await?;
        if count.tripped.is_some() {
            let from = s.completed.load(SeqCst) + 1;
            *s.tripped.lock().unwrap_or_else(|p| p.into_inner()) = Some((from, covers));
        }
        *s.last.lock().unwrap_or_else(|p| p.into_inner()) = match count.counted {
            Some((newly, population)) if count.tripped.is_none() => Some(Counted {
                newly,
                population,
                covers,
            }),
            _ => None,
        };
        s.completed.store(covers, SeqCst);
        Ok(count.tripped.is_some())
    }

    /// One check of `rule`; applies a trip to this replica at once.
    pub async fn check(&self, rule: Rule) -> Result<bool, ApiError> {
        Ok(self.count(rule).await?.tripped.is_some())
    }

    async fn count(&self, rule: Rule) -> Result<store::TripwireCount, ApiError> {
        let cfg = self.0.rules;
        let count = with_conn(&self.0.pool, move |c| {
            store::check_tripwire(c, rule, &cfg).map_err(ApiError::from)
        })
        .await?;
        if let Some(row) = &count.tripped {
            self.0.suspensions.update(row);
            self.0.outbox.nudge();
        }
        Ok(count)
    }
}
