//! This replica's cache of clients and the scopes each may obtain, so that
//! the token endpoint authenticates a client without a database round trip.
//!
//! Coherence: an entry lives at most `ttl` (`CLIENT_CACHE_TTL_MS`, 0 turns
//! the cache off). Any successful administrative change made through this
//! replica empties the cache at once; a change made through another
//! replica is seen here within `ttl`. A fill notes the cache's generation
//! before it reads the database and is dropped if the cache was emptied
//! meanwhile, so a read that raced a change never caches the old state.
//! Unknown client ids are never cached, and the cache holds at most
//! `MAX_ENTRIES` clients, so requests with made-up ids cannot grow it.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock,
    },
    time::{Duration, Instant},
};

use crate::grants::Client;

const MAX_ENTRIES: usize = 10_000;

/// A client and the scopes it may obtain.
pub type Known = Arc<(Client, BTreeSet<String>)>;

pub struct ClientCache {
    ttl: Duration,
    generation: AtomicU64,
    entries: RwLock<HashMap<String, (Instant, Known)>>,
}

impl ClientCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            generation: AtomicU64::new(0),
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The cached client, if fresh.
    pub fn get(&self, id: &str) -> Option<Known> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .get(id)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, known)| known.clone())
    }

    /// To pass to `fill` along with what a database read returned.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches what was read at `generation`, unless the cache was emptied
    /// since.
    pub fn fill(&self, generation: u64, known: Known) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        entries.insert(known.0.id.clone(), (Instant::now(), known));
    }

    /// Forgets everything: called after every administrative change.
    pub fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn known(id: &str) -> Known {
        Arc::new((
            Client {
                id: id.to_owned(),
                name: id.to_owned(),
                secret_hash: None,
                is_public: true,
                first_party: false,
                redirect_uris: vec![],
                grant_types: vec![],
                created_at: Utc::now(),
            },
            BTreeSet::new(),
        ))
    }

    #[test]
    fn a_fill_that_raced_a_clear_is_dropped() {
        let cache = ClientCache::new(Duration::from_secs(60));
        let before = cache.generation();
        cache.clear();
        cache.fill(before, known("a"));
        assert!(cache.get("a").is_none());
        cache.fill(cache.generation(), known("a"));
        assert!(cache.get("a").is_some());
        cache.clear();
        assert!(cache.get("a").is_none());
    }

    #[test]
    fn entries_expire_and_a_zero_ttl_disables_the_cache() {
        let cache = ClientCache::new(Duration::from_millis(20));
        cache.fill(cache.generation(), known("a"));
        assert!(cache.get("a").is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(cache.get("a").is_none());
        let off = ClientCache::new(Duration::ZERO);
        off.fill(off.generation(), known("a"));
        assert!(off.get("a").is_none());
    }
}
