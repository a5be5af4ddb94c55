//! The tripwire's decisions: where a rule's window starts, when the rule
//! trips, and whether its restrictions are suspended.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::thresholds::TripwireConfig;

/// Where a rule's sliding window starts: `window` ago, or at `counted_since`
/// (the rule's last trip or reset) if that is later.
pub fn window_start(
    now: DateTime<Utc>,
    window: Duration,
    counted_since: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let start = now - chrono::Duration::from_std(window).unwrap_or(chrono::TimeDelta::MAX);
    counted_since.map_or(start, |r| r.max(start))
}

/// The tripwire: the rule newly restricted more than its share of the users
/// seen, over a population large enough for the share to mean something.
pub fn trips(newly_restricted: i64, population: i64, cfg: &TripwireConfig) -> bool {
    population > cfg.min_population && cfg.ratio.exceeded_by(newly_restricted, population)
}

/// Whether a rule's restrictions are suspended at `now`.
pub fn suspended(suspended_until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    suspended_until.is_some_and(|u| u > now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RulesConfig;

    fn cfg() -> RulesConfig {
        RulesConfig::default()
    }

    #[test]
    fn the_tripwire_needs_a_population_and_more_than_its_share() {
        let t = cfg().tripwire;
        assert!(!trips(3, 20, &t), "population not above the minimum");
        assert!(!trips(2, 40, &t), "exactly 5 %");
        assert!(trips(3, 40, &t));
        assert!(!trips(50_000, 1_000_000, &t));
        assert!(trips(50_001, 1_000_000, &t));
    }

    #[test]
    fn a_trip_or_reset_starts_the_window_afresh() {
        let now = Utc::now();
        let w = Duration::from_secs(300);
        assert_eq!(
            window_start(now, w, None),
            now - chrono::Duration::seconds(300)
        );
        let reset = now - chrono::Duration::seconds(10);
        assert_eq!(window_start(now, w, Some(reset)), reset);
        let old = now - chrono::Duration::seconds(1000);
        assert_eq!(
            window_start(now, w, Some(old)),
            now - chrono::Duration::seconds(300)
        );
    }

    #[test]
    fn suspension_ends_on_time() {
        let now = Utc::now();
        assert!(suspended(Some(now + chrono::Duration::seconds(1)), now));
        assert!(!suspended(Some(now), now));
        assert!(!suspended(None, now));
    }
}
