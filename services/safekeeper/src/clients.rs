//! This replica's cache of clients and the scopes each may obtain, so that
//! the token endpoint authenticates a client without a database round trip.
//!
//! Coherence follows [`platform::coherent`]: every change of the tables a
//! client's authentication reads (`client`, `client_scope` and the RBAC
//! catalogue) sends `NOTIFY safekeeper_clients` (statement triggers,
//! delivered at commit to every replica's listener), which empties the
//! cache; an administrative change made through this replica empties it at
//! once, before the answer. A read that raced a change is never kept, and
//! nothing is kept while the listener is disconnected. An entry also lives
//! at most `ttl` (`CLIENT_CACHE_TTL_MS`, 0 turns the cache off), a
//! backstop. Unknown client ids are never cached, and the cache holds at
//! most `MAX_ENTRIES` clients, so requests with made-up ids cannot grow it.

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use platform::coherent::{self, Coherent, Lookup, Subscriber};
use tokio::sync::watch;

use crate::grants::Client;

const MAX_ENTRIES: usize = 10_000;
pub const CHANNEL: &str = "safekeeper_clients";

/// A client and the scopes it may obtain.
pub type Known = Arc<(Client, BTreeSet<String>)>;

pub struct ClientCache {
    ttl: Duration,
    inner: Coherent<String, (), (Instant, Known)>,
}

impl ClientCache {
    pub fn new(ttl: Duration) -> Self {
        let capacity = if ttl.is_zero() { 0 } else { MAX_ENTRIES };
        Self {
            ttl,
            inner: Coherent::new(capacity),
        }
    }

    /// The cached client; on a miss, the generation to [`fill`](Self::fill)
    /// with what the database returns.
    pub fn lookup(&self, id: &str) -> Lookup<Known> {
        match self.inner.lookup(id, &()) {
            Lookup::Hit((at, known)) if at.elapsed() < self.ttl => Lookup::Hit(known),
            Lookup::Hit(_) => {
                self.inner.changed(&id.to_owned());
                self.inner.lookup(id, &()).map_hit(|(_, k)| k)
            }
            other => other.map_hit(|(_, k)| k),
        }
    }

    /// Caches what was read after `lookup` answered `Miss(generation)`,
    /// unless the cache was emptied since.
    pub fn fill(&self, generation: u64, known: Known) {
        let id = known.0.id.clone();
        self.inner.fill(id, (), (Instant::now(), known), generation);
    }

    /// Forgets everything: called after every administrative change.
    pub fn clear(&self) {
        self.inner.clear();
    }
}

struct Listening(Arc<ClientCache>);

impl Subscriber for Listening {
    fn connected(&self) {
        self.0.inner.reset(true);
    }

    fn notified(&self, _channel: &str, _payload: &str) {
        self.0.inner.clear();
    }

    fn disconnected(&self) {
        self.0.inner.reset(false);
    }
}

/// Listens on its own connection and thread until shutdown.
pub fn spawn_listener(
    cache: Arc<ClientCache>,
    database_url: String,
    shutdown: watch::Receiver<bool>,
) -> Option<std::thread::JoinHandle<()>> {
    if !cache.inner.enabled() {
        return None;
    }
    coherent::spawn_listener(
        "safekeeper-clients",
        database_url,
        &[CHANNEL],
        Arc::new(Listening(cache)),
        shutdown,
    )
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
                pkce_required: true,
            },
            BTreeSet::new(),
        ))
    }

    fn miss(cache: &ClientCache) -> u64 {
        match cache.lookup("a") {
            Lookup::Miss(g) => g,
            other => panic!("{:?}", other.map_hit(|_| ())),
        }
    }

    fn live(ttl: Duration) -> ClientCache {
        let cache = ClientCache::new(ttl);
        cache.inner.reset(true);
        cache
    }

    #[test]
    fn a_fill_that_raced_a_clear_is_dropped() {
        let cache = live(Duration::from_secs(60));
        let before = miss(&cache);
        cache.clear();
        cache.fill(before, known("a"));
        let now = miss(&cache);
        cache.fill(now, known("a"));
        assert!(matches!(cache.lookup("a"), Lookup::Hit(_)));
        cache.clear();
        assert!(matches!(cache.lookup("a"), Lookup::Miss(_)));
    }

    #[test]
    fn entries_expire_and_a_zero_ttl_disables_the_cache() {
        let cache = live(Duration::from_millis(20));
        let g = miss(&cache);
        cache.fill(g, known("a"));
        assert!(matches!(cache.lookup("a"), Lookup::Hit(_)));
        std::thread::sleep(Duration::from_millis(30));
        assert!(matches!(cache.lookup("a"), Lookup::Miss(_)));
        let off = live(Duration::ZERO);
        assert!(matches!(off.lookup("a"), Lookup::Bypass));
    }

    #[test]
    fn nothing_is_kept_while_the_listener_is_away() {
        let cache = Arc::new(ClientCache::new(Duration::from_secs(60)));
        assert!(matches!(cache.lookup("a"), Lookup::Bypass));
        let l = Listening(cache.clone());
        l.connected();
        let g = miss(&cache);
        cache.fill(g, known("a"));
        l.notified(CHANNEL, "");
        assert!(matches!(cache.lookup("a"), Lookup::Miss(_)));
        l.disconnected();
        assert!(matches!(cache.lookup("a"), Lookup::Bypass));
    }
}
