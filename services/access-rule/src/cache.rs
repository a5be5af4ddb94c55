//! This replica's cache of what the checks read (a user's restrictions and
//! active flag), so that a check is a memory read rather than a database
//! round trip.
//!
//! Coherence: every change of what a check reads sends
//! `NOTIFY access_rule_user, '<user id>'` to every replica's listener, and
//! the replica that made the change also invalidates at once. Most
//! transactions notify within themselves (delivered at their commit); the
//! batches of `POST /event` notify right after their commit, and the
//! outbox relay notifies each user whose access event it publishes, so that
//! a notification lost to a crash between a batch's commit and its
//! notification still arrives (the change's outbox row is durable). A fill
//! records its shard's generation before it reads the database and is
//! dropped if an invalidation came meanwhile, so a read that raced a change
//! never caches the old state. While the
//! listener is not connected (start-up, database restart), the cache is
//! empty and bypassed: a lost notification cannot leave a stale entry.
//!
//! Warm-up: each time the listener connects, every user's check state is
//! loaded (up to the capacity) in pages by primary key, each page filled
//! under the generations read before it, so that a check after a restart
//! is a memory read rather than a database round trip. Checks served
//! meanwhile read the database as usual.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, RwLock,
    },
    time::Instant,
};

use diesel::{pg::PgConnection, Connection};
use platform::coherent::{self, Subscriber};
use tokio::sync::watch;

use crate::domain::Restrictions;

pub const CHANNEL: &str = "access_rule_user";
const SHARDS: usize = 256;

struct Shard {
    generation: u64,
    map: HashMap<Box<str>, Restrictions>,
}

pub struct CheckCache {
    shards: Box<[RwLock<Shard>]>,
    per_shard: usize,
    live: AtomicBool,
}

/// The generations of every shard, read before a page of the warm-up.
pub struct Snapshot(Vec<u64>);

/// Room for `capacity` users however unevenly they spread over the shards:
/// the mean plus an eighth, or plus six standard deviations when that is
/// more (small caches).
fn per_shard(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let mean = capacity.div_ceil(SHARDS);
    let spread = 6 * (mean as f64).sqrt().ceil() as usize + 8;
    mean + (mean / 8).max(spread)
}

impl CheckCache {
    /// A cache of about `capacity` users (0: disabled).
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    RwLock::new(Shard {
                        generation: 0,
                        map: HashMap::new(),
                    })
                })
                .collect(),
            per_shard: per_shard(capacity),
            live: AtomicBool::new(false),
        }
    }

    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    /// How many users are cached.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|p| p.into_inner()).map.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn enabled(&self) -> bool {
        self.per_shard > 0
    }

    fn index(user_id: &str) -> usize {
        let h = user_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        (h % SHARDS as u64) as usize
    }

    fn shard(&self, user_id: &str) -> &RwLock<Shard> {
        &self.shards[Self::index(user_id)]
    }

    pub fn get(&self, user_id: &str) -> Option<Restrictions> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let s = self
            .shard(user_id)
            .read()
            .unwrap_or_else(|p| p.into_inner());
        s.map.get(user_id).copied()
    }

    /// Call before reading the database for a fill; `None`: do not fill.
    pub fn generation(&self, user_id: &str) -> Option<u64> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        Some(
            self.shard(user_id)
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .generation,
        )
    }

    /// Caches what was read, unless an invalidation came since `generation`.
    pub fn fill(&self, user_id: &str, generation: u64, r: Restrictions) {
        let mut s = self
            .shard(user_id)
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if s.generation != generation || !self.live.load(Ordering::Acquire) {
            return;
        }
        self.insert(&mut s, user_id, r);
    }

    fn insert(&self, s: &mut Shard, user_id: &str, r: Restrictions) {
        if let Some(e) = s.map.get_mut(user_id) {
            *e = r;
            return;
        }
        if s.map.len() >= self.per_shard {
            // Full (more users than CHECK_CACHE_ENTRIES): evict one entry,
            // whichever comes first; it is read from the database again.
            if let Some(k) = s.map.keys().next().cloned() {
                s.map.remove(&k);
            }
        }
        s.map.insert(user_id.into(), r);
    }

    /// Call before reading a page of the warm-up; `None`: do not fill.
    pub fn snapshot(&self) -> Option<Snapshot> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        Some(Snapshot(
            self.shards
                .iter()
                .map(|s| s.read().unwrap_or_else(|p| p.into_inner()).generation)
                .collect(),
        ))
    }

    /// Caches a page read after `snapshot`, except the users of shards
    /// invalidated since (they are read from the database when checked).
    /// Returns how many were cached.
    pub fn fill_page(&self, snapshot: &Snapshot, rows: &[(String, Restrictions)]) -> usize {
        let mut filled = 0;
        for (user_id, r) in rows {
            let i = Self::index(user_id);
            let mut s = self.shards[i].write().unwrap_or_else(|p| p.into_inner());
            if s.generation != snapshot.0[i] || !self.live.load(Ordering::Acquire) {
                continue;
            }
            self.insert(&mut s, user_id, *r);
            filled += 1;
        }
        filled
    }

    /// The user's restrictions changed (here or in another replica).
    pub fn invalidate(&self, user_id: &str) {
        let mut s = self
            .shard(user_id)
            .write()
            .unwrap_or_else(|p| p.into_inner());
        s.generation += 1;
        s.map.remove(user_id);
    }

    fn set_live(&self, live: bool) {
        if !live {
            self.live.store(false, Ordering::Release);
        }
        for shard in self.shards.iter() {
            let mut s = shard.write().unwrap_or_else(|p| p.into_inner());
            s.generation += 1;
            s.map.clear();
        }
        if live {
            self.live.store(true, Ordering::Release);
        }
    }
}

/// Sends the invalidations for `user_ids`, one statement: inside the
/// transaction that changes what a check reads (delivered when it commits),
/// or right after its commit (see [`crate::store::apply_batch`]).
pub fn notify_changes(conn: &mut PgConnection, user_ids: &[String]) -> diesel::QueryResult<()> {
    coherent::notify(conn, CHANNEL, user_ids)
}

/// Users read by one query of the warm-up.
const WARM_UP_PAGE: i64 = 20_000;
pub const WARM_GAUGE: &str = "access_rule_check_cache_warm";
pub const ENTRIES_GAUGE: &str = "access_rule_check_cache_users";

/// Reads a page of the warm-up: up to `limit` users' check states, by user
/// id after the given one (the store's `check_page`). Passed in, so that
/// the cache does not depend on the store that notifies it.
pub type ReadPage =
    fn(&mut PgConnection, &str, i64) -> diesel::QueryResult<Vec<(String, Restrictions)>>;

/// Listens for invalidations on a connection and thread of its own
/// ([`platform::coherent::spawn_listener`]) until shutdown; the cache is
/// live only while it is connected, and warmed up each time it connects
/// with pages read by `read_page`.
pub async fn run_listener(
    cache: Arc<CheckCache>,
    database_url: String,
    read_page: ReadPage,
    shutdown: watch::Receiver<bool>,
) {
    if !cache.enabled() {
        return;
    }
    let listening = Arc::new(Listening {
        cache,
        database_url: database_url.clone(),
        read_page,
        runtime: tokio::runtime::Handle::current(),
        warm: Mutex::new(None),
    });
    let mut stop = shutdown.clone();
    let thread = coherent::spawn_listener(
        "access-rule-checks",
        database_url,
        &[CHANNEL],
        listening,
        shutdown,
    );
    // The thread ends by itself on shutdown.
    if thread.is_some() {
        while !*stop.borrow() && stop.changed().await.is_ok() {}
    }
}

struct Listening {
    cache: Arc<CheckCache>,
    database_url: String,
    read_page: ReadPage,
    runtime: tokio::runtime::Handle,
    warm: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Listening {
    fn stop_warming(&self) {
        if let Some(w) = self.warm.lock().unwrap_or_else(|p| p.into_inner()).take() {
            w.abort();
        }
    }
}

impl Subscriber for Listening {
    fn connected(&self) {
        self.stop_warming();
        self.cache.set_live(true);
        let warm = self.runtime.spawn(warm_up(
            self.cache.clone(),
            self.database_url.clone(),
            self.read_page,
        ));
        *self.warm.lock().unwrap_or_else(|p| p.into_inner()) = Some(warm);
    }

    fn notified(&self, _channel: &str, user_id: &str) {
        self.cache.invalidate(user_id);
    }

    fn disconnected(&self) {
        // Notifications may have been missed: empty and bypass the cache.
        self.stop_warming();
        self.cache.set_live(false);
        platform::metrics::global().gauge(WARM_GAUGE, WARM_HELP, 0.0);
    }
}

const WARM_HELP: &str = "1 once the check cache holds every user (up to CHECK_CACHE_ENTRIES) since the listener connected";

/// Loads every user's check state into the cache (up to its capacity), a
/// page at a time; see the module's documentation.
async fn warm_up(cache: Arc<CheckCache>, database_url: String, read_page: ReadPage) {
    let metrics = platform::metrics::global();
    metrics.gauge(WARM_GAUGE, WARM_HELP, 0.0);
    let started = Instant::now();
    let connected = platform::db::blocking(move || PgConnection::establish(&database_url)).await;
    let mut conn = match connected {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::warn!(error = %platform::problem::chain(&e), "check cache warm-up cannot connect; users are cached as they are checked");
            return;
        }
        Err(_) => return,
    };
    let (mut after, mut cached) = (String::new(), 0_usize);
    while cached < cache.capacity() {
        let Some(snapshot) = cache.snapshot() else {
            return;
        };
        let from = std::mem::take(&mut after);
        let read = platform::db::blocking(move || {
            let r = read_page(&mut conn, &from, WARM_UP_PAGE);
            (conn, r)
        })
        .await;
        let rows = match read {
            Ok((c, Ok(rows))) => {
                conn = c;
                rows
            }
            Ok((_, Err(e))) => {
                tracing::warn!(error = %platform::problem::chain(&e), "check cache warm-up failed; users are cached as they are checked");
                return;
            }
            Err(_) => return,
        };
        let Some((last, _)) = rows.last() else {
            break;
        };
        after = last.clone();
        cached += cache.fill_page(&snapshot, &rows);
        if (rows.len() as i64) < WARM_UP_PAGE {
            break;
        }
    }
    metrics.gauge(
        ENTRIES_GAUGE,
        "users in the check cache after its warm-up",
        cached as f64,
    );
    metrics.gauge(WARM_GAUGE, WARM_HELP, 1.0);
    tracing::info!(
        users = cached,
        took_ms = started.elapsed().as_millis() as u64,
        "check cache warmed up"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(active: bool) -> Restrictions {
        Restrictions {
            is_active: active,
            ..Restrictions::default()
        }
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_dropped() {
        let c = CheckCache::new(1000);
        assert!(c.generation("u").is_none(), "not live before the listener");
        c.set_live(true);
        let g = c.generation("u").unwrap();
        c.invalidate("u");
        c.fill("u", g, r(true));
        assert_eq!(c.get("u"), None);
        let g = c.generation("u").unwrap();
        c.fill("u", g, r(true));
        assert_eq!(c.get("u"), Some(r(true)));
        c.invalidate("u");
        assert_eq!(c.get("u"), None);
    }

    #[test]
    fn a_warm_up_page_skips_the_shards_invalidated_since_its_snapshot() {
        let c = CheckCache::new(1000);
        assert!(c.snapshot().is_none(), "not live before the listener");
        c.set_live(true);
        let snap = c.snapshot().unwrap();
        c.invalidate("changed");
        let rows = vec![
            ("changed".to_owned(), r(true)),
            ("same".to_owned(), r(false)),
        ];
        let filled = c.fill_page(&snap, &rows);
        assert_eq!(c.get("changed"), None, "read before the change: not cached");
        if CheckCache::index("changed") != CheckCache::index("same") {
            assert_eq!(filled, 1);
            assert_eq!(c.get("same"), Some(r(false)));
        }
    }

    #[test]
    fn the_capacity_holds_that_many_users_and_beyond_it_evicts_one_at_a_time() {
        let c = CheckCache::new(10_000);
        c.set_live(true);
        let snap = c.snapshot().unwrap();
        let rows: Vec<_> = (0..10_000).map(|i| (format!("u{i}"), r(true))).collect();
        assert_eq!(c.fill_page(&snap, &rows), 10_000);
        assert_eq!(c.len(), 10_000, "no eviction up to the capacity");
        let more: Vec<_> = (0..50_000).map(|i| (format!("v{i}"), r(true))).collect();
        c.fill_page(&snap, &more);
        assert!(c.len() <= c.capacity() && c.len() > 10_000, "{}", c.len());
    }

    #[test]
    fn losing_the_listener_empties_and_bypasses_the_cache() {
        let c = CheckCache::new(1000);
        c.set_live(true);
        let g = c.generation("u").unwrap();
        c.fill("u", g, r(false));
        c.set_live(false);
        assert_eq!(c.get("u"), None);
        c.fill("u", g, r(false));
        c.set_live(true);
        assert_eq!(c.get("u"), None);
        assert!(!CheckCache::new(0).enabled());
    }
}
