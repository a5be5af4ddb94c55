//! Failed-login throttling per username and per client address, in a
//! sliding window. In memory, per replica: with N replicas an attacker gets
//! at most N times the budget; a shared store (Redis) is the next step.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

pub struct FailureLimiter {
    window: Duration,
    max: usize,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl FailureLimiter {
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            window,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Some(seconds)` to wait when `key` has used up its failures.
    pub fn blocked_for(&self, key: &str) -> Option<u64> {
        let now = Instant::now();
        let mut map = self.lock();
        let q = map.get_mut(key)?;
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        if q.len() >= self.max {
            let oldest = *q.front()?;
            let wait = self.window.saturating_sub(now.duration_since(oldest));
            Some(wait.as_secs().max(1))
        } else {
            if q.is_empty() {
                map.remove(key);
            }
            None
        }
    }

    pub fn record_failure(&self, key: &str) {
        let now = Instant::now();
        let mut map = self.lock();
        // Bound memory under a spray of distinct keys: drop stale entries.
        if map.len() > 100_000 {
            let window = self.window;
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let q = map.entry(key.to_owned()).or_default();
        q.push_back(now);
        while q.len() > self.max {
            q.pop_front();
        }
    }

    pub fn clear(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_and_clears_on_success() {
        let l = FailureLimiter::new(3, Duration::from_secs(60));
        for _ in 0..2 {
            l.record_failure("u:alice");
        }
        assert_eq!(l.blocked_for("u:alice"), None);
        l.record_failure("u:alice");
        let wait = l.blocked_for("u:alice").expect("blocked");
        assert!((1..=60).contains(&wait));
        assert_eq!(l.blocked_for("u:bob"), None);
        l.clear("u:alice");
        assert_eq!(l.blocked_for("u:alice"), None);
    }

    #[test]
    fn failures_expire_with_the_window() {
        let l = FailureLimiter::new(1, Duration::from_millis(20));
        l.record_failure("k");
        assert!(l.blocked_for("k").is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(l.blocked_for("k"), None);
    }
}
