//! This replica's memory of its callers, so that an authenticated request
//! needs no signature check and no database read before its own work:
//!
//! - [`TokenCache`]: access tokens whose signature, issuer, audience and
//!   `typ` were verified, with their claims, until they expire. Only the
//!   very same token string is found.
//! - [`UserCache`]: rows of the users read model. Every change of the
//!   table sends `NOTIFY task_users, '<id>'` (a trigger; delivered at
//!   commit to every replica's listener, which drops the entry), and the
//!   consumer of this replica marks a user as changing before its
//!   transaction commits, so that from then until the listener hears of
//!   the commit, that user is read from the database. A fill is dropped
//!   when anything was invalidated while it read. While the listener is
//!   not connected (start-up, database restart), the cache is empty and
//!   bypassed, so a lost notification cannot leave a stale entry. Another
//!   replica's change reaches this one within [`POLL`] of its commit.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock,
    },
    time::{Duration, Instant},
};

use diesel::{pg::PgConnection, sql_query, Connection, RunQueryDsl};
use platform::jwt::AccessClaims;
use tokio::sync::watch;
use uuid::Uuid;

use crate::store::User;

/// The channel of the `users_notify` trigger (migrations/task).
pub const CHANNEL: &str = "task_users";
/// How often the listener reads what arrived.
pub const POLL: Duration = Duration::from_millis(5);
const PING: Duration = Duration::from_secs(1);
/// A change marked by the consumer whose commit was never heard of (it
/// rolled back, so nothing changed) stops bypassing after this.
const PENDING_MAX: Duration = Duration::from_secs(30);

/// Verified access tokens and their claims.
pub struct TokenCache {
    capacity: usize,
    map: RwLock<HashMap<String, AccessClaims>>,
}

impl TokenCache {
    /// About `capacity` tokens (0: disabled).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            map: RwLock::new(HashMap::new()),
        }
    }

    /// The claims of `token` if it was verified and has not expired.
    pub fn get(&self, token: &str) -> Option<AccessClaims> {
        if self.capacity == 0 {
            return None;
        }
        let claims = self.map.read().ok()?.get(token).cloned()?;
        (claims.exp > chrono::Utc::now().timestamp()).then_some(claims)
    }

    /// Remembers a verified token (when full, everything is forgotten).
    pub fn put(&self, token: &str, claims: &AccessClaims) {
        if self.capacity == 0 {
            return;
        }
        if let Ok(mut m) = self.map.write() {
            if m.len() >= self.capacity {
                m.clear();
            }
            m.insert(token.to_owned(), claims.clone());
        }
    }
}

struct Users {
    /// Bumped by every invalidation: a fill that read before it is dropped.
    generation: u64,
    rows: HashMap<Uuid, User>,
    /// Users whose change this replica is committing.
    changing: HashMap<Uuid, Instant>,
}

impl Users {
    fn is_changing(&self, id: &Uuid) -> bool {
        self.changing
            .get(id)
            .is_some_and(|t| t.elapsed() < PENDING_MAX)
    }
}

/// What [`UserCache::lookup`] found.
#[derive(Debug)]
pub enum Lookup {
    Hit(User),
    /// Read the database, then [`UserCache::fill`] with this generation.
    Miss(u64),
    /// Read the database and keep nothing.
    Bypass,
}

/// Rows of the users read model, coherent through the database's
/// notifications.
pub struct UserCache {
    capacity: usize,
    live: AtomicBool,
    inner: RwLock<Users>,
}

impl UserCache {
    /// About `capacity` users (0: disabled).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            live: AtomicBool::new(false),
            inner: RwLock::new(Users {
                generation: 0,
                rows: HashMap::new(),
                changing: HashMap::new(),
            }),
        }
    }

    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    pub fn lookup(&self, id: Uuid) -> Lookup {
        if !self.enabled() || !self.live.load(Ordering::Acquire) {
            return Lookup::Bypass;
        }
        let Ok(u) = self.inner.read() else {
            return Lookup::Bypass;
        };
        if u.is_changing(&id) {
            return Lookup::Bypass;
        }
        match u.rows.get(&id) {
            Some(row) => Lookup::Hit(row.clone()),
            None => Lookup::Miss(u.generation),
        }
    }

    /// Keeps `row`, read after [`lookup`](Self::lookup) answered
    /// `Miss(generation)`, unless anything was invalidated since.
    pub fn fill(&self, row: &User, generation: u64) {
        if !self.live.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut u) = self.inner.write() else {
            return;
        };
        if u.generation != generation || u.is_changing(&row.id) {
            return;
        }
        if u.rows.len() >= self.capacity {
            u.rows.clear();
        }
        u.rows.insert(row.id, row.clone());
    }

    /// The consumer is changing `id` in a transaction not yet committed.
    pub fn changing(&self, id: Uuid) {
        if let Ok(mut u) = self.inner.write() {
            u.generation += 1;
            u.rows.remove(&id);
            u.changing.retain(|_, t| t.elapsed() < PENDING_MAX);
            u.changing.insert(id, Instant::now());
        }
    }

    /// A change of `id` was committed (heard by the listener).
    pub fn changed(&self, id: Uuid) {
        if let Ok(mut u) = self.inner.write() {
            u.generation += 1;
            u.rows.remove(&id);
            u.changing.remove(&id);
        }
    }

    /// Forgets everything; the cache is used only while `live`.
    pub fn reset(&self, live: bool) {
        if let Ok(mut u) = self.inner.write() {
            u.generation += 1;
            u.rows.clear();
            u.changing.clear();
            self.live.store(live, Ordering::Release);
        }
    }

    fn notified(&self, payload: &str) {
        match payload.parse::<Uuid>() {
            Ok(id) => self.changed(id),
            // `*` (the table was emptied), or anything unexpected.
            Err(_) => self.reset(true),
        }
    }
}

/// Listens on a connection of its own, on a thread of its own, until
/// shutdown; the user cache is live only while it is connected.
pub fn spawn_listener(
    cache: Arc<UserCache>,
    database_url: String,
    shutdown: watch::Receiver<bool>,
) -> Option<std::thread::JoinHandle<()>> {
    if !cache.enabled() {
        return None;
    }
    let stopped = move || *shutdown.borrow();
    let thread = std::thread::Builder::new()
        .name("task-users-listener".into())
        .spawn(move || {
            while !stopped() {
                let connected = PgConnection::establish(&database_url)
                    .map_err(anyhow::Error::from)
                    .and_then(|mut c| {
                        sql_query(format!("LISTEN {CHANNEL}")).execute(&mut c)?;
                        Ok(c)
                    });
                let mut conn = match connected {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "users cache listener cannot connect; callers are read from the database"
                        );
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                };
                cache.reset(true);
                let mut last_ping = Instant::now();
                let lost = loop {
                    std::thread::sleep(POLL);
                    if stopped() {
                        break None;
                    }
                    if last_ping.elapsed() >= PING {
                        last_ping = Instant::now();
                        if let Err(e) = sql_query("SELECT 1").execute(&mut conn) {
                            break Some(e);
                        }
                    }
                    let heard: Result<Vec<String>, _> = conn
                        .notifications_iter()
                        .map(|n| n.map(|n| n.payload))
                        .collect();
                    match heard {
                        Ok(payloads) => {
                            for p in payloads {
                                cache.notified(&p);
                            }
                        }
                        Err(e) => break Some(e),
                    }
                };
                // Notifications may have been missed: forget and bypass.
                cache.reset(false);
                if let Some(e) = lost {
                    tracing::warn!(error = %e, "users cache listener lost its connection; callers are read from the database");
                }
            }
        })
        .ok()?;
    Some(thread)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(active: bool) -> User {
        User {
            id: Uuid::from_u128(7),
            username: Some("ann".into()),
            is_active: active,
            roles: vec![],
            scopes: None,
            user_version: 1,
            role_version: 0,
            updated_at: chrono::Utc::now(),
        }
    }

    fn hit(c: &UserCache) -> Option<bool> {
        match c.lookup(Uuid::from_u128(7)) {
            Lookup::Hit(u) => Some(u.is_active),
            _ => None,
        }
    }

    fn miss(c: &UserCache) -> u64 {
        match c.lookup(Uuid::from_u128(7)) {
            Lookup::Miss(g) => g,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nothing_is_kept_before_the_listener_is_connected() {
        let c = UserCache::new(10);
        assert!(matches!(c.lookup(Uuid::from_u128(7)), Lookup::Bypass));
        c.fill(&user(true), 0);
        c.reset(true);
        assert_eq!(hit(&c), None);
        let g = miss(&c);
        c.fill(&user(true), g);
        assert_eq!(hit(&c), Some(true));
        // Losing the listener forgets and bypasses.
        c.reset(false);
        assert!(matches!(c.lookup(Uuid::from_u128(7)), Lookup::Bypass));
    }

    #[test]
    fn a_fill_that_raced_a_change_is_dropped() {
        let c = UserCache::new(10);
        c.reset(true);
        let g = miss(&c);
        // The row was read, then a change was heard before the fill.
        c.changed(Uuid::from_u128(99));
        c.fill(&user(true), g);
        assert_eq!(hit(&c), None);
    }

    #[test]
    fn a_user_being_changed_is_read_from_the_database_until_the_commit_is_heard() {
        let c = UserCache::new(10);
        c.reset(true);
        let g = miss(&c);
        c.fill(&user(true), g);
        assert_eq!(hit(&c), Some(true));
        c.changing(Uuid::from_u128(7));
        assert!(matches!(c.lookup(Uuid::from_u128(7)), Lookup::Bypass));
        c.changed(Uuid::from_u128(7));
        let g = miss(&c);
        c.fill(&user(false), g);
        assert_eq!(hit(&c), Some(false));
        // `*`: the table was emptied.
        c.notified("*");
        assert_eq!(hit(&c), None);
    }

    #[test]
    fn a_token_is_found_only_until_it_expires() {
        let c = TokenCache::new(2);
        let now = chrono::Utc::now().timestamp();
        let claims = |exp| AccessClaims {
            iss: "i".into(),
            sub: "s".into(),
            aud: "a".into(),
            client_id: "c".into(),
            scope: "read:task".into(),
            iat: now,
            exp,
            jti: "j".into(),
            username: None,
            sid: None,
        };
        c.put("live", &claims(now + 60));
        c.put("old", &claims(now - 1));
        assert!(c.get("live").is_some());
        assert!(c.get("old").is_none());
        assert!(c.get("other").is_none());
        assert!(TokenCache::new(0).get("live").is_none());
    }
}
