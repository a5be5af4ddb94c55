//! Runs the tripwire checks after restricting events commit, coalesced per
//! rule: at most one check of a rule runs at a time in a replica, checks of
//! a rule start at least `TRIPWIRE_CHECK_INTERVAL_MS` apart, and a caller
//! returns once a check that started after its commit has finished, its own
//! or another's. Under a burst of restrictions, one count covers many
//! events instead of one count each; a trip comes at most an interval late.

use std::{
    sync::atomic::{AtomicU64, Ordering::SeqCst},
    time::Instant,
};

use platform::db::with_conn;
use tokio::sync::Mutex;

use crate::{domain::Rule, error::ApiError, state::AppState, store};

#[derive(Default)]
struct Slot {
    requested: AtomicU64,
    completed: AtomicU64,
    /// When the last check started; held while a check runs.
    running: Mutex<Option<Instant>>,
}

#[derive(Default)]
pub struct TripwireChecks {
    slots: [Slot; 3],
}

fn slot(rule: Rule) -> usize {
    match rule {
        Rule::ScamFlags => 0,
        Rule::CardZipRatio => 1,
        Rule::ChargebackRatio => 2,
    }
}

impl TripwireChecks {
    /// Call after a restriction by `rule` committed. True when the check
    /// this call ran tripped the rule.
    pub async fn after_restriction(&self, state: &AppState, rule: Rule) -> Result<bool, ApiError> {
        let s = &self.slots[slot(rule)];
        let mine = s.requested.fetch_add(1, SeqCst) + 1;
        let mut last_start = s.running.lock().await;
        if s.completed.load(SeqCst) >= mine {
            return Ok(false); // a check that started after our commit has run
        }
        let interval = state.settings.tripwire_check_interval;
        if let Some(wait) = last_start.and_then(|t| interval.checked_sub(t.elapsed())) {
            tokio::time::sleep(wait).await;
        }
        *last_start = Some(Instant::now());
        // Read after the pause: this check covers every commit until now.
        let covers = s.requested.load(SeqCst);
        let tripped = check(state, rule).await?;
        s.completed.store(covers, SeqCst);
        Ok(tripped)
    }
}

/// One check of `rule`; applies a trip to this replica at once.
pub async fn check(state: &AppState, rule: Rule) -> Result<bool, ApiError> {
    let cfg = state.settings.rules;
    let tripped = with_conn(&state.pool, move |c| {
        store::check_tripwire(c, rule, &cfg).map_err(ApiError::from)
    })
    .await?;
    if let Some(row) = &tripped {
        state.suspensions.update(row);
        state.outbox.nudge();
    }
    Ok(tripped.is_some())
}
