//! Revocation everywhere: the safekeeper publishes every revocation on
//! `oauth.revocation.v1` (through its outbox, in the revoking transaction),
//! and each resource server keeps the live ones in memory and refuses the
//! access tokens they match, within a fetch of the broker.
//!
//! A revocation names a token (`jti`), a grant or refresh family (`sid`),
//! a client or a user. A client's or user's revocation covers the tokens
//! issued up to it (`iat <= revoked_at`), so tokens issued afterwards (a
//! re-created client, a re-activated account) work. An entry is kept until
//! `expires_at`: by then every token it could match has expired.
//!
//! The set is not persisted: every process reads the whole topic from the
//! beginning at start, in a consumer group of its own (assigned partitions,
//! no committed offsets), and reports [`Revocations::caught_up`] once it
//! has read up to the ends the topic had at start; `/readyz` answers 503
//! until then (see [`crate::server::start_with`]). Only events whose
//! `source.service` is the safekeeper are applied.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, RwLock,
    },
    time::Duration,
};

use chrono::Utc;
use rdkafka::{consumer::Consumer, Message, Offset, TopicPartitionList};

use tokio::sync::watch;

pub use contracts::topics::revocation::{Kind, Revocation, ENTITY, PRODUCER};

use crate::{
    config::CommonConfig,
    events::{self, topics, Envelope},
    jwt::AccessClaims,
};

/// How often expired entries are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    revoked_at: i64,
    expires_at: i64,
}

#[derive(Default)]
struct Sets {
    jti: HashMap<String, Entry>,
    sid: HashMap<String, Entry>,
    client: HashMap<String, Entry>,
    user: HashMap<String, Entry>,
}

impl Sets {
    fn map(&mut self, kind: Kind) -> &mut HashMap<String, Entry> {
        match kind {
            Kind::Jti => &mut self.jti,
            Kind::Sid => &mut self.sid,
            Kind::Client => &mut self.client,
            Kind::User => &mut self.user,
        }
    }

    fn len(&self) -> usize {
        self.jti.len() + self.sid.len() + self.client.len() + self.user.len()
    }

    fn matches(&self, c: &AccessClaims) -> bool {
        self.jti.contains_key(c.jti.as_str())
            || c.sid.as_deref().is_some_and(|s| self.sid.contains_key(s))
            || self
                .client
                .get(c.client_id.as_str())
                .is_some_and(|e| c.iat <= e.revoked_at)
            || self
                .user
                .get(c.sub.as_str())
                .is_some_and(|e| c.iat <= e.revoked_at)
    }
}

struct Inner {
    sets: RwLock<Sets>,
    /// Entries held: lets the common case (nothing revoked) skip the lock.
    held: AtomicUsize,
    caught_up: AtomicBool,
}

/// This process's set of live revocations (cheap to clone).
#[derive(Clone)]
pub struct Revocations(Arc<Inner>);

impl Default for Revocations {
    fn default() -> Self {
        Self::new()
    }
}

impl Revocations {
    /// An empty set, not caught up until [`Revocations::spawn`] has read
    /// the topic.
    pub fn new() -> Self {
        Self(Arc::new(Inner {
            sets: RwLock::new(Sets::default()),
            held: AtomicUsize::new(0),
            caught_up: AtomicBool::new(false),
        }))
    }

    /// A set fed from `oauth.revocation.v1` until `shutdown` turns true.
    pub fn start(common: &CommonConfig, shutdown: watch::Receiver<bool>) -> Self {
        let r = Self::new();
        r.spawn(common, shutdown);
        r
    }

    /// Starts feeding this set from the topic (once per set).
    pub fn spawn(&self, common: &CommonConfig, shutdown: watch::Receiver<bool>) {
        let cfg = FeedConfig {
            brokers: common.kafka_brokers.clone(),
            group: format!(
                "revocations-{}-{}",
                common.service,
                uuid::Uuid::new_v4().simple()
            ),
            partitions: common.kafka_topic_partitions,
            replication: common.kafka_topic_replication,
        };
        let span = tracing::info_span!("revocation_feed", group = %cfg.group);
        tokio::spawn(tracing::Instrument::instrument(
            feed(self.clone(), cfg, shutdown),
            span,
        ));
    }

    /// True when `claims` are revoked. A few hash lookups under a read
    /// lock, no allocation; none at all while nothing is revoked.
    pub fn is_revoked(&self, claims: &AccessClaims) -> bool {
        if self.0.held.load(Ordering::Acquire) == 0 {
            return false;
        }
        self.read().matches(claims)
    }

    /// True once the topic was read up to where it ended at start.
    pub fn caught_up(&self) -> bool {
        self.0.caught_up.load(Ordering::Acquire)
    }

    /// `/readyz`'s check: ready once caught up ([`crate::server::start_with`]).
    pub fn ready_check(&self) -> crate::server::ReadyCheck {
        let set = self.clone();
        crate::server::ReadyCheck::new("revocations", move || set.caught_up())
    }

    /// How many revocations are held.
    pub fn len(&self) -> usize {
        self.0.held.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a revocation (one already expired at `now` is ignored).
    pub fn apply(&self, r: &Revocation, now: i64) {
        if r.expires_at < now {
            return;
        }
        let mut sets = self.write();
        let entry = Entry {
            revoked_at: r.revoked_at,
            expires_at: r.expires_at,
        };
        sets.map(r.kind)
            .entry(r.value.clone())
            .and_modify(|e| {
                e.revoked_at = e.revoked_at.max(entry.revoked_at);
                e.expires_at = e.expires_at.max(entry.expires_at);
            })
            .or_insert(entry);
        self.0.held.store(sets.len(), Ordering::Release);
    }

    /// Forgets the entries that expired before `now`; returns how many.
    pub fn prune(&self, now: i64) -> usize {
        let mut sets = self.write();
        let before = sets.len();
        for kind in [Kind::Jti, Kind::Sid, Kind::Client, Kind::User] {
            sets.map(kind).retain(|_, e| e.expires_at >= now);
        }
        let after = sets.len();
        self.0.held.store(after, Ordering::Release);
        before - after
    }

    /// Marks the set as caught up (tests; the feed does it itself).
    pub fn mark_caught_up(&self) {
        self.0.caught_up.store(true, Ordering::Release);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Sets> {
        self.0.sets.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Sets> {
        self.0.sets.write().unwrap_or_else(|p| p.into_inner())
    }
}

struct FeedConfig {
    brokers: String,
    group: String,
    partitions: i32,
    replication: i32,
}

/// Reads the topic into `set` until shutdown; retries with backoff.
async fn feed(set: Revocations, cfg: FeedConfig, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match feed_once(&set, &cfg, &mut shutdown).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "reading oauth.revocation.v1 failed; retrying"
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Partitions of the topic and their ends (high watermarks) now.
fn topic_ends(consumer: &events::PlatformConsumer) -> anyhow::Result<Vec<(i32, i64, i64)>> {
    let timeout = Duration::from_secs(5);
    let md = consumer.fetch_metadata(Some(topics::REVOCATION), timeout)?;
    let topic = md
        .topics()
        .iter()
        .find(|t| t.name() == topics::REVOCATION)
        .ok_or_else(|| anyhow::anyhow!("the broker does not know {}", topics::REVOCATION))?;
    if let Some(e) = topic.error() {
        anyhow::bail!("metadata of {}: {e:?}", topics::REVOCATION);
    }
    anyhow::ensure!(
        !topic.partitions().is_empty(),
        "{} has no partitions yet",
        topics::REVOCATION
    );
    topic
        .partitions()
        .iter()
        .map(|p| {
            let (low, high) = consumer.fetch_watermarks(topics::REVOCATION, p.id(), timeout)?;
            Ok((p.id(), low, high))
        })
        .collect()
}

async fn feed_once(
    set: &Revocations,
    cfg: &FeedConfig,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    // Created here if missing (the safekeeper may not have started yet);
    // a principal without the right to create it reads it all the same.
    if let Err(e) = events::ensure_topics(
        &cfg.brokers,
        &[topics::REVOCATION],
        cfg.partitions,
        cfg.replication,
    )
    .await
    {
        tracing::debug!(error = format!("{e:#}"), "oauth.revocation.v1 not created");
    }
    let consumer = Arc::new(events::stream_consumer(&cfg.brokers, &cfg.group)?);
    // Where the topic ends now: reaching these offsets is catching up.
    let c = consumer.clone();
    let ends = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let ends = topic_ends(&c)?;
        let mut tpl = TopicPartitionList::new();
        for (p, _, _) in &ends {
            tpl.add_partition_offset(topics::REVOCATION, *p, Offset::Beginning)?;
        }
        c.assign(&tpl)?;
        Ok(ends)
    })
    .await??;
    // Partition -> the offset of the last message it held at start.
    let mut pending: HashMap<i32, i64> = ends
        .into_iter()
        .filter(|(_, low, high)| high > low)
        .map(|(p, _, high)| (p, high - 1))
        .collect();
    if pending.is_empty() && !set.caught_up() {
        set.mark_caught_up();
        tracing::info!("revocations caught up (the topic was empty)");
    }
    let metrics = crate::metrics::global();
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let msg = tokio::select! {
            m = consumer.recv() => m,
            _ = prune.tick() => {
                let n = set.prune(Utc::now().timestamp());
                if n > 0 {
                    tracing::debug!(pruned = n, "expired revocations forgotten");
                }
                metrics.gauge("revocations_held", "Revocations held in memory.", set.len() as f64);
                continue;
            }
            _ = shutdown.changed() => return Ok(()),
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %crate::problem::chain(&e), "revocation consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        match msg.payload().map(serde_json::from_slice::<Envelope>) {
            Some(Ok(envelope)) => match Revocation::from_envelope(&envelope) {
                Ok(r) => {
                    set.apply(&r, Utc::now().timestamp());
                    metrics.count(
                        "revocations_applied_total",
                        "Revocations read from oauth.revocation.v1.",
                        "",
                        1,
                    );
                }
                Err(why) => tracing::warn!(
                    partition = msg.partition(),
                    offset = msg.offset(),
                    source = %envelope.source.service,
                    reason = why,
                    "skipping an event of oauth.revocation.v1"
                ),
            },
            Some(Err(e)) => tracing::error!(
                partition = msg.partition(),
                offset = msg.offset(),
                error = %crate::problem::chain(&e),
                "skipping a message of oauth.revocation.v1 that is not an envelope"
            ),
            None => {}
        }
        if !pending.is_empty() {
            if pending
                .get(&msg.partition())
                .is_some_and(|last| msg.offset() >= *last)
            {
                pending.remove(&msg.partition());
            }
            if pending.is_empty() {
                set.mark_caught_up();
                tracing::info!(held = set.len(), "revocations caught up");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(jti: &str, sid: Option<&str>, client: &str, sub: &str, iat: i64) -> AccessClaims {
        AccessClaims {
            iss: "http://sk".into(),
            sub: sub.into(),
            aud: "platform".into(),
            client_id: client.into(),
            scope: "read:task".into(),
            iat,
            exp: iat + 300,
            jti: jti.into(),
            username: None,
            sid: sid.map(str::to_owned),
        }
    }

    fn revocation(kind: Kind, value: &str, revoked_at: i64) -> Revocation {
        Revocation {
            kind,
            value: value.into(),
            revoked_at,
            expires_at: revoked_at + 300,
        }
    }

    #[test]
    fn nothing_is_revoked_in_an_empty_set() {
        let set = Revocations::new();
        assert!(!set.is_revoked(&claims("j", Some("s"), "c", "u", 100)));
        assert!(set.is_empty());
        assert!(!set.caught_up());
    }

    #[test]
    fn a_revoked_jti_refuses_that_token_only() {
        let set = Revocations::new();
        set.apply(&revocation(Kind::Jti, "j1", 100), 100);
        assert!(set.is_revoked(&claims("j1", None, "c", "c", 100)));
        assert!(!set.is_revoked(&claims("j2", None, "c", "c", 100)));
    }

    #[test]
    fn a_revoked_family_refuses_every_token_of_it_whenever_issued() {
        let set = Revocations::new();
        set.apply(&revocation(Kind::Sid, "fam", 100), 100);
        assert!(set.is_revoked(&claims("a", Some("fam"), "c", "u", 50)));
        assert!(set.is_revoked(&claims("b", Some("fam"), "c", "u", 150)));
        assert!(!set.is_revoked(&claims("c", Some("other"), "c", "u", 50)));
        assert!(!set.is_revoked(&claims("d", None, "c", "u", 50)));
    }

    #[test]
    fn a_revoked_client_or_user_refuses_only_tokens_issued_up_to_the_revocation() {
        let set = Revocations::new();
        set.apply(&revocation(Kind::Client, "svc", 100), 100);
        set.apply(&revocation(Kind::User, "alice", 200), 200);
        assert!(set.is_revoked(&claims("a", None, "svc", "svc", 99)));
        assert!(set.is_revoked(&claims("b", None, "svc", "svc", 100)));
        assert!(!set.is_revoked(&claims("c", None, "svc", "svc", 101)));
        assert!(set.is_revoked(&claims("d", None, "spa", "alice", 200)));
        assert!(!set.is_revoked(&claims("e", None, "spa", "alice", 201)));
        // A client named like the user is not the user.
        assert!(!set.is_revoked(&claims("f", None, "alice", "bob", 150)));
    }

    #[test]
    fn a_later_revocation_of_the_same_value_extends_it() {
        let set = Revocations::new();
        set.apply(&revocation(Kind::User, "alice", 100), 100);
        set.apply(&revocation(Kind::User, "alice", 300), 300);
        set.apply(&revocation(Kind::User, "alice", 200), 300);
        assert!(set.is_revoked(&claims("a", None, "spa", "alice", 250)));
        assert_eq!(set.len(), 1);
        assert_eq!(set.prune(450), 0, "kept until the latest expiry");
        assert_eq!(set.prune(601), 1);
    }

    #[test]
    fn expired_entries_are_pruned_and_not_applied() {
        let set = Revocations::new();
        set.apply(&revocation(Kind::Jti, "old", 100), 100);
        set.apply(&revocation(Kind::Jti, "new", 1000), 1000);
        // Already expired when read (replaying an old topic): ignored.
        set.apply(&revocation(Kind::Sid, "ancient", 10), 1000);
        assert_eq!(set.len(), 2);
        assert_eq!(set.prune(400), 0, "nothing has expired at its expiry");
        assert_eq!(set.prune(401), 1);
        assert!(!set.is_revoked(&claims("old", None, "c", "c", 100)));
        assert!(set.is_revoked(&claims("new", None, "c", "c", 1000)));
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn only_the_safekeepers_revocations_are_accepted() {
        let r = revocation(Kind::Client, "svc", 100);
        let good = r.envelope("client");
        assert_eq!(Revocation::from_envelope(&good), Ok(r.clone()));
        let v = serde_json::to_value(&good).unwrap();
        assert_eq!(v["entity"], "revocation");
        assert_eq!(v["op"], "c");
        assert_eq!(v["key"], "svc");
        assert_eq!(v["after"]["kind"], "client");
        assert_eq!(v["after"]["expires_at"], 400);

        let mut forged = good.clone();
        forged.source.service = "access-rule".into();
        assert!(Revocation::from_envelope(&forged).is_err());
        let mut other = good.clone();
        other.entity = "user".into();
        assert!(Revocation::from_envelope(&other).is_err());
        let mut odd = good.clone();
        odd.after = Some(
            serde_json::json!({"kind": "everyone", "value": "x", "revoked_at": 1, "expires_at": 2}),
        );
        assert!(Revocation::from_envelope(&odd).is_err());
        odd.after = None;
        assert!(Revocation::from_envelope(&odd).is_err());
    }
}
