//! This replica's cache of what the checks read (a user's restrictions and
//! active flag), so that a check is a memory read rather than a database
//! round trip.
//!
//! Coherence: every transaction that changes what a check reads sends
//! `NOTIFY access_rule_user, '<user id>'` (delivered at commit, to every
//! replica's listener), and the replica that made the change also
//! invalidates at once. A fill records its shard's generation before it
//! reads the database and is dropped if an invalidation came meanwhile, so
//! a read that raced a change never caches the old state. While the
//! listener is not connected (start-up, database restart), the cache is
//! empty and bypassed: a lost notification cannot leave a stale entry.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock,
    },
    time::{Duration, Instant},
};

use diesel::{pg::PgConnection, sql_query, Connection, RunQueryDsl};
use tokio::sync::watch;

use crate::domain::Restrictions;

pub const CHANNEL: &str = "access_rule_user";
const SHARDS: usize = 256;

struct Shard {
    generation: u64,
    map: HashMap<String, Restrictions>,
}

pub struct CheckCache {
    shards: Box<[RwLock<Shard>]>,
    per_shard: usize,
    live: AtomicBool,
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
            per_shard: capacity.div_ceil(SHARDS),
            live: AtomicBool::new(false),
        }
    }

    pub fn enabled(&self) -> bool {
        self.per_shard > 0
    }

    fn shard(&self, user_id: &str) -> &RwLock<Shard> {
        let h = user_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        &self.shards[(h % SHARDS as u64) as usize]
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
        if s.map.len() >= self.per_shard {
            s.map.clear(); // crude, and rare: the cache holds ~all users
        }
        s.map.insert(user_id.to_owned(), r);
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

/// Sends the invalidation for `user_id`; call inside the transaction that
/// changes what a check reads (delivered when it commits).
pub fn notify_change(conn: &mut PgConnection, user_id: &str) -> diesel::QueryResult<()> {
    sql_query("SELECT pg_notify($1, $2)")
        .bind::<diesel::sql_types::Text, _>(CHANNEL)
        .bind::<diesel::sql_types::Text, _>(user_id)
        .execute(conn)?;
    Ok(())
}

const POLL: Duration = Duration::from_millis(5);
const PING: Duration = Duration::from_secs(1);

/// Listens for invalidations on a connection of its own until shutdown;
/// the cache is live only while it is connected.
pub async fn run_listener(
    cache: Arc<CheckCache>,
    database_url: String,
    mut shutdown: watch::Receiver<bool>,
) {
    if !cache.enabled() {
        return;
    }
    loop {
        let url = database_url.clone();
        let connected = platform::db::blocking(move || -> anyhow::Result<PgConnection> {
            let mut c = PgConnection::establish(&url)?;
            sql_query(format!("LISTEN {CHANNEL}")).execute(&mut c)?;
            Ok(c)
        })
        .await;
        let mut conn = match connected {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "check cache listener cannot connect; checks read the database"
                );
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
            Err(_) => return,
        };
        cache.set_live(true);
        let mut last_ping = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => {
                    cache.set_live(false);
                    return;
                }
            }
            let ping = last_ping.elapsed() >= PING;
            if ping {
                last_ping = Instant::now();
            }
            let polled = platform::db::blocking(move || {
                let r = (|| -> diesel::QueryResult<Vec<String>> {
                    if ping {
                        sql_query("SELECT 1").execute(&mut conn)?;
                    }
                    conn.notifications_iter()
                        .map(|n| n.map(|n| n.payload))
                        .collect()
                })();
                (conn, r)
            })
            .await;
            match polled {
                Ok((c, Ok(users))) => {
                    conn = c;
                    for u in users {
                        cache.invalidate(&u);
                    }
                }
                Ok((_, Err(e))) => {
                    tracing::warn!(error = %e, "check cache listener lost its connection; checks read the database");
                    break;
                }
                Err(_) => break,
            }
        }
        // Notifications may have been missed: empty and bypass the cache.
        cache.set_live(false);
    }
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
