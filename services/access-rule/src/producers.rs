//! Each event producer (the `client_id` of its access token) may post at
//! most `PRODUCER_EVENTS_PER_SECOND` events a second, with bursts of up to
//! `PRODUCER_BURST`: a token bucket per producer, in this replica's memory
//! (so with N replicas behind a balancer a producer gets at most N times
//! its rate). An event over the rate is refused before it is read into
//! the store: it changes nothing.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct RateLimits {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// More producers than this are not expected; beyond it, buckets full
/// again (idle for a burst's time) are forgotten.
const PRUNE_ABOVE: usize = 10_000;

impl RateLimits {
    /// `rate` events a second (0: no limit), `burst` at once.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one event from `producer`'s bucket, or says how long until
    /// one is available.
    pub fn take(&self, producer: &str) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > PRUNE_ABOVE && !map.contains_key(producer) {
            let (rate, burst) = (self.rate, self.burst);
            map.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = map.entry(producer.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.duration_since(b.at).as_secs_f64() * self.rate;
        b.tokens = (b.tokens + refill).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_producer_gets_its_burst_then_waits_and_others_are_not_affected() {
        let limits = RateLimits::new(1.0, 3.0);
        for _ in 0..3 {
            assert!(limits.take("a").is_ok());
        }
        let wait = limits.take("a").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(limits.take("b").is_ok());
        assert!(RateLimits::new(0.0, 1.0).take("a").is_ok());
    }
}
