//! A replica's memory of rows it would otherwise read from its database on
//! every request, kept coherent by PostgreSQL's `LISTEN`/`NOTIFY`.
//!
//! The writer's transaction sends `NOTIFY <channel>, '<group>'` (usually a
//! trigger); the notification is delivered at commit to every replica's
//! listener ([`spawn_listener`]), which drops the group's entries. The rules
//! that make this safe:
//!
//! - **A fill that raced a change is dropped.** [`Coherent::lookup`]
//!   answers a miss with the cache's generation, and [`Coherent::fill`]
//!   keeps the row only if no invalidation came since: a read that saw the
//!   old state never lands after the change was heard.
//! - **Nothing is kept while the listener is not connected** (start-up, a
//!   database restart): a lost notification cannot leave a stale entry.
//!   The cache is emptied and bypassed until the listener is back.
//! - **Read your own writes.** A replica committing a change marks the group
//!   [`changing`](Coherent::changing) before its commit; from then until its
//!   listener hears the commit, the group is read from the database. Another
//!   replica's change reaches this one when its listener next polls
//!   ([`POLL`]) after the commit.
//!
//! A group is what one notification names (a user, an assignee); a group
//! holds entries by key (one per query shape, say).

use std::{
    borrow::Borrow,
    collections::HashMap,
    hash::Hash,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock,
    },
    time::{Duration, Instant},
};

use diesel::{pg::PgConnection, sql_query, Connection, RunQueryDsl};
use tokio::sync::watch;

/// How often a listener reads what arrived.
pub const POLL: Duration = Duration::from_millis(5);
/// How often an idle listener checks its connection.
const PING: Duration = Duration::from_secs(1);
/// A change marked as coming whose commit was never heard (it rolled back,
/// so nothing changed) stops bypassing after this.
const PENDING_MAX: Duration = Duration::from_secs(30);

/// What [`Coherent::lookup`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<V> {
    Hit(V),
    /// Read the database, then [`Coherent::fill`] with this generation.
    Miss(u64),
    /// Read the database and keep nothing.
    Bypass,
}

impl<V> Lookup<V> {
    /// The same answer with a hit's value changed by `f`.
    pub fn map_hit<W>(self, f: impl FnOnce(V) -> W) -> Lookup<W> {
        match self {
            Lookup::Hit(v) => Lookup::Hit(f(v)),
            Lookup::Miss(g) => Lookup::Miss(g),
            Lookup::Bypass => Lookup::Bypass,
        }
    }
}

struct Inner<G, K, V> {
    /// Bumped by every invalidation: a fill that read before it is dropped.
    generation: u64,
    entries: usize,
    groups: HashMap<G, HashMap<K, V>>,
    /// Groups whose change this replica is committing.
    changing: HashMap<G, Instant>,
}

impl<G: Eq + Hash, K, V> Inner<G, K, V> {
    fn is_changing<Q>(&self, group: &Q) -> bool
    where
        G: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.changing
            .get(group)
            .is_some_and(|t| t.elapsed() < PENDING_MAX)
    }

    fn drop_group(&mut self, group: &G) {
        self.generation += 1;
        if let Some(g) = self.groups.remove(group) {
            self.entries -= g.len();
        }
    }
}

/// Entries by group and key, coherent through the database's notifications
/// (see the module's documentation).
pub struct Coherent<G, K, V> {
    capacity: usize,
    live: AtomicBool,
    inner: RwLock<Inner<G, K, V>>,
}

impl<G, K, V> Coherent<G, K, V>
where
    G: Eq + Hash + Clone,
    K: Eq + Hash,
    V: Clone,
{
    /// About `capacity` entries (0: disabled). When full, everything is
    /// forgotten: simple, and the next requests fill it again.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            live: AtomicBool::new(false),
            inner: RwLock::new(Inner {
                generation: 0,
                entries: 0,
                groups: HashMap::new(),
                changing: HashMap::new(),
            }),
        }
    }

    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    pub fn len(&self) -> usize {
        self.inner.read().map_or(0, |i| i.entries)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry of `group` (anything `G` borrows as: a `&str` for
    /// `String` groups, without an allocation) and `key`.
    pub fn lookup<Q>(&self, group: &Q, key: &K) -> Lookup<V>
    where
        G: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.enabled() || !self.live.load(Ordering::Acquire) {
            return Lookup::Bypass;
        }
        let Ok(inner) = self.inner.read() else {
            return Lookup::Bypass;
        };
        if inner.is_changing(group) {
            return Lookup::Bypass;
        }
        match inner.groups.get(group).and_then(|g| g.get(key)) {
            Some(v) => Lookup::Hit(v.clone()),
            None => Lookup::Miss(inner.generation),
        }
    }

    /// Keeps `value`, read after [`lookup`](Self::lookup) answered
    /// `Miss(generation)`, unless anything was invalidated since.
    pub fn fill(&self, group: G, key: K, value: V, generation: u64) {
        if !self.live.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        if inner.generation != generation || inner.is_changing(&group) {
            return;
        }
        if inner.entries >= self.capacity {
            inner.groups.clear();
            inner.entries = 0;
        }
        if inner
            .groups
            .entry(group)
            .or_default()
            .insert(key, value)
            .is_none()
        {
            inner.entries += 1;
        }
    }

    /// This replica is changing `group` in a transaction not yet committed:
    /// read it from the database until [`changed`](Self::changed).
    pub fn changing(&self, group: G) {
        if !self.enabled() {
            return;
        }
        if let Ok(mut inner) = self.inner.write() {
            inner.drop_group(&group);
            inner.changing.retain(|_, t| t.elapsed() < PENDING_MAX);
            inner.changing.insert(group, Instant::now());
        }
    }

    /// A change of `group` was committed (heard by the listener).
    pub fn changed(&self, group: &G) {
        if let Ok(mut inner) = self.inner.write() {
            inner.drop_group(group);
            inner.changing.remove(group);
        }
    }

    /// Forgets every entry (a change that touches them all: rare).
    pub fn clear(&self) {
        if let Ok(mut inner) = self.inner.write() {
            inner.generation += 1;
            inner.groups.clear();
            inner.entries = 0;
        }
    }

    /// Forgets every entry; the cache is used only while `live`. Groups
    /// this replica is changing stay marked until their commit is heard.
    pub fn reset(&self, live: bool) {
        if !live {
            self.live.store(false, Ordering::Release);
        }
        self.clear();
        if live {
            self.live.store(true, Ordering::Release);
        }
    }
}

/// What a listener reports to the caches it serves.
pub trait Subscriber: Send + Sync + 'static {
    /// The listener is connected: notifications from now on will arrive.
    fn connected(&self);
    /// A notification on one of the channels, in commit order.
    fn notified(&self, channel: &str, payload: &str);
    /// The connection is gone (or the listener stops): anything may have
    /// been missed.
    fn disconnected(&self);
}

/// Sends `NOTIFY <channel>, '<group>'` for each of `groups`, in one prepared
/// statement: delivered when the caller's transaction commits, or at once
/// outside one.
pub fn notify<S: AsRef<str>>(
    conn: &mut PgConnection,
    channel: &str,
    groups: &[S],
) -> diesel::QueryResult<()> {
    use diesel::sql_types::{Array, Text};
    if groups.is_empty() {
        return Ok(());
    }
    let groups: Vec<&str> = groups.iter().map(AsRef::as_ref).collect();
    crate::db::prepared("SELECT pg_notify($1, g) FROM unnest($2::text[]) AS g")
        .bind::<Text, _>(channel)
        .bind::<Array<Text>, _>(groups)
        .execute(conn)?;
    Ok(())
}

/// Listens on `channels` on a connection of its own, on a thread of its
/// own, until `shutdown` says so or its sender is dropped; reconnects
/// (every second) after losing the connection. `None` (logged) when the
/// thread cannot start: the subscriber is then never connected, so its
/// caches stay bypassed.
pub fn spawn_listener(
    name: &str,
    database_url: String,
    channels: &[&str],
    subscriber: Arc<dyn Subscriber>,
    shutdown: watch::Receiver<bool>,
) -> Option<std::thread::JoinHandle<()>> {
    let channels: Vec<String> = channels.iter().map(|c| c.to_string()).collect();
    // Told to stop, or its sender is gone (the service was dropped).
    let stopped = move || *shutdown.borrow() || shutdown.has_changed().is_err();
    let name = name.to_owned();
    let thread_name = format!("{name}-listener");
    std::thread::Builder::new()
        .name(thread_name.clone())
        .spawn(move || {
            while !stopped() {
                let connected = PgConnection::establish(&database_url)
                    .map_err(anyhow::Error::from)
                    .and_then(|mut c| {
                        for ch in &channels {
                            sql_query(format!("LISTEN \"{}\"", ch.replace('"', "")))
                                .execute(&mut c)?;
                        }
                        Ok(c)
                    });
                let mut conn = match connected {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(
                            listener = %name,
                            error = format!("{e:#}"),
                            "cache listener cannot connect; reads go to the database"
                        );
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                };
                subscriber.connected();
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
                    let heard: Result<Vec<_>, _> = conn.notifications_iter().collect();
                    match heard {
                        Ok(heard) => {
                            for n in heard {
                                subscriber.notified(&n.channel, &n.payload);
                            }
                        }
                        Err(e) => break Some(e),
                    }
                };
                subscriber.disconnected();
                if let Some(e) = lost {
                    tracing::warn!(
                        listener = %name,
                        error = %crate::problem::chain(&e),
                        "cache listener lost its connection; reads go to the database"
                    );
                }
            }
        })
        .map_err(|e| tracing::error!(listener = %thread_name, error = %crate::problem::chain(&e), "cannot start a cache listener; its caches stay off"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Cache = Coherent<u32, &'static str, i32>;

    fn live() -> Cache {
        let c = Cache::new(10);
        c.reset(true);
        c
    }

    fn miss(c: &Cache, g: u32, k: &'static str) -> u64 {
        match c.lookup(&g, &k) {
            Lookup::Miss(generation) => generation,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nothing_is_kept_before_the_listener_is_connected_or_after_it_is_lost() {
        let c = Cache::new(10);
        assert_eq!(c.lookup(&1, &"a"), Lookup::Bypass);
        c.fill(1, "a", 5, 0);
        c.reset(true);
        let g = miss(&c, 1, "a");
        c.fill(1, "a", 5, g);
        assert_eq!(c.lookup(&1, &"a"), Lookup::Hit(5));
        c.reset(false);
        assert_eq!(c.lookup(&1, &"a"), Lookup::Bypass);
        assert!(c.is_empty());
    }

    #[test]
    fn a_fill_that_raced_a_change_is_dropped() {
        let c = live();
        let g = miss(&c, 1, "a");
        c.changed(&2);
        c.fill(1, "a", 5, g);
        assert_eq!(miss(&c, 1, "a"), g + 1);
    }

    #[test]
    fn a_change_drops_every_entry_of_its_group_and_no_other() {
        let c = live();
        for (g, k, v) in [(1, "a", 1), (1, "b", 2), (2, "a", 3)] {
            let gen = miss(&c, g, k);
            c.fill(g, k, v, gen);
        }
        assert_eq!(c.len(), 3);
        c.changed(&1);
        assert!(matches!(c.lookup(&1, &"a"), Lookup::Miss(_)));
        assert!(matches!(c.lookup(&1, &"b"), Lookup::Miss(_)));
        assert_eq!(c.lookup(&2, &"a"), Lookup::Hit(3));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_group_being_changed_here_is_read_from_the_database_until_the_commit_is_heard() {
        let c = live();
        let g = miss(&c, 1, "a");
        c.fill(1, "a", 5, g);
        c.changing(1);
        assert_eq!(c.lookup(&1, &"a"), Lookup::Bypass);
        // A fill that started before the mark is dropped, as is one during it.
        c.fill(1, "a", 5, g);
        assert_eq!(c.lookup(&1, &"a"), Lookup::Bypass);
        c.changed(&1);
        let g = miss(&c, 1, "a");
        c.fill(1, "a", 6, g);
        assert_eq!(c.lookup(&1, &"a"), Lookup::Hit(6));
    }

    #[test]
    fn a_full_cache_starts_over_and_a_disabled_one_keeps_nothing() {
        let c = Cache::new(2);
        c.reset(true);
        for k in ["a", "b", "c"] {
            let g = miss(&c, 1, k);
            c.fill(1, k, 0, g);
        }
        assert_eq!(c.len(), 1);
        assert_eq!(c.lookup(&1, &"c"), Lookup::Hit(0));
        let off = Cache::new(0);
        off.reset(true);
        assert_eq!(off.lookup(&1, &"a"), Lookup::Bypass);
    }
}
