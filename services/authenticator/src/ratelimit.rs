//! Throttling of guesses and sign-ups, after OWASP's Authentication and
//! Credential Stuffing cheat sheets, built so that it cannot be turned
//! against the users it protects:
//!
//! - failed logins count per (account, address) and per address, each with
//!   exponential back-off once its free attempts are used: failures from one
//!   address never block the same account from another address;
//! - a per-account ceiling, far higher and short-lived, slows a guessing
//!   campaign spread over many addresses without a lasting lockout;
//! - an attempt is *reserved* atomically before its password is hashed and
//!   given back when it succeeds, so N concurrent guesses count as N;
//! - registrations (and other account creations that name an end user's
//!   address) count per address.
//!
//! The counts live in Redis when `REDIS_URL` is set, shared by every
//! replica (one round trip per attempt, keys expire by themselves), and in
//! memory otherwise (one replica). A Redis that stops answering degrades to
//! the in-memory counts of each replica instead of refusing every login or
//! letting every guess through.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use platform::metrics;

/// How one kind of key is limited: `free` attempts, then each further one
/// waits `base · 2^(n − free)` after the last, at most `max`; a key
/// without attempts for `forget` starts over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub free: u32,
    pub base: Duration,
    pub max: Duration,
    pub forget: Duration,
}

impl Rule {
    /// How long after the last attempt a key with `n` attempts is blocked.
    fn backoff_ms(&self, n: u32) -> i64 {
        if n < self.free {
            return 0;
        }
        let doublings = (n - self.free).min(30);
        let ms = self.base.as_millis() as i64 * (1_i64 << doublings);
        ms.min(self.max.as_millis() as i64)
    }
}

/// The rules of every key kind.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Failed logins of one account from one address.
    pub pair: Rule,
    /// Failed logins from one address, whatever the account.
    pub address: Rule,
    /// Failed logins of one account from everywhere: the ceiling.
    pub account: Rule,
    /// Account creations from one address.
    pub signup: Rule,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            pair: Rule {
                free: 5,
                base: Duration::from_secs(1),
                max: Duration::from_secs(15 * 60),
                forget: Duration::from_secs(15 * 60),
            },
            address: Rule {
                free: 50,
                base: Duration::from_secs(1),
                max: Duration::from_secs(15 * 60),
                forget: Duration::from_secs(15 * 60),
            },
            account: Rule {
                free: 500,
                base: Duration::from_secs(30),
                max: Duration::from_secs(60),
                forget: Duration::from_secs(5 * 60),
            },
            signup: Rule {
                free: 20,
                base: Duration::from_secs(10),
                max: Duration::from_secs(60 * 60),
                forget: Duration::from_secs(60 * 60),
            },
        }
    }
}

/// One key to count, with its rule.
#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    pub rule: Rule,
}

/// The attempts a request reserved; [`Throttle::release`] gives them back.
#[derive(Debug)]
pub struct Reservation {
    keys: Vec<Key>,
}

/// Attempts counted in memory: one replica's view.
#[derive(Default)]
struct Memory {
    /// key → (attempts, last attempt in ms since `epoch`)
    counts: Mutex<HashMap<String, (u32, i64)>>,
}

impl Memory {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, i64)>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reserve(&self, keys: &[Key], now_ms: i64) -> Result<(), u64> {
        let mut map = self.lock();
        // Bound memory under a spray of distinct keys: drop forgotten ones.
        if map.len() > 200_000 {
            let longest = keys
                .iter()
                .map(|k| k.rule.forget.as_millis() as i64)
                .max()
                .unwrap_or(0);
            map.retain(|_, (_, last)| now_ms - *last < longest);
        }
        let current = |map: &HashMap<String, (u32, i64)>, k: &Key| {
            map.get(&k.name)
                .copied()
                .filter(|(_, last)| now_ms - last < k.rule.forget.as_millis() as i64)
                .unwrap_or((0, 0))
        };
        let wait = keys
            .iter()
            .map(|k| {
                let (n, last) = current(&map, k);
                last + k.rule.backoff_ms(n) - now_ms
            })
            .max()
            .unwrap_or(0);
        if wait > 0 {
            return Err(wait as u64);
        }
        for k in keys {
            let (n, _) = current(&map, k);
            map.insert(k.name.clone(), (n + 1, now_ms));
        }
        Ok(())
    }

    fn release(&self, keys: &[Key], forget: &[&str]) {
        let mut map = self.lock();
        for k in keys {
            if forget.contains(&k.name.as_str()) {
                map.remove(&k.name);
            } else if let Some((n, _)) = map.get_mut(&k.name) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

/// Checks every key, then counts the attempt in all of them, atomically.
/// KEYS: the keys; ARGV: now (ms), then per key free, base (ms), max (ms),
/// forget (ms). Answers 0, or the milliseconds to wait.
const RESERVE: &str = r#"
local now = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  local j = 2 + (i - 1) * 4
  local free, base, max = tonumber(ARGV[j]), tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
  local v = redis.call('HMGET', key, 'n', 't')
  local n, t = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  if n >= free then
    local backoff = math.min(base * 2 ^ math.min(n - free, 30), max)
    wait = math.max(wait, t + backoff - now)
  end
end
if wait > 0 then return math.ceil(wait) end
for i, key in ipairs(KEYS) do
  local forget = tonumber(ARGV[5 + (i - 1) * 4])
  redis.call('HINCRBY', key, 'n', 1)
  redis.call('HSET', key, 't', now)
  redis.call('PEXPIRE', key, forget)
end
return 0
"#;

/// Gives a reservation back: KEYS[1..=ARGV[1]] are forgotten (a success
/// clears the pair), the others count one attempt fewer.
const RELEASE: &str = r#"
local forget = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  if i <= forget then
    redis.call('DEL', key)
  elseif redis.call('HINCRBY', key, 'n', -1) < 0 then
    redis.call('HSET', key, 'n', 0)
  end
end
return 0
"#;

struct Shared {
    conn: redis::aio::ConnectionManager,
    reserve: redis::Script,
    release: redis::Script,
    prefix: String,
}

#[derive(Clone)]
pub struct Throttle {
    policy: Arc<Policy>,
    memory: Arc<Memory>,
    shared: Option<Arc<Shared>>,
    started: Instant,
}

/// A Redis call that takes longer than this counts as Redis being down.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

impl Throttle {
    /// Counts in this replica's memory.
    pub fn in_memory(policy: Policy) -> Self {
        Self {
            policy: Arc::new(policy),
            memory: Arc::default(),
            shared: None,
            started: Instant::now(),
        }
    }

    /// Counts in Redis at `url`, keys under `prefix`, shared by every
    /// replica that uses the same prefix. Fails only for a malformed URL.
    pub fn redis(policy: Policy, url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        // Connects at the first use, and again after a failure: a Redis
        // that is down at start degrades to memory, as one that goes down.
        let conn = redis::aio::ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            shared: Some(Arc::new(Shared {
                conn,
                reserve: redis::Script::new(RESERVE),
                release: redis::Script::new(RELEASE),
                prefix: prefix.to_owned(),
            })),
            ..Self::in_memory(policy)
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn now_ms(&self) -> i64 {
        // Redis needs a clock all replicas share; memory only its own.
        if self.shared.is_some() {
            chrono::Utc::now().timestamp_millis()
        } else {
            self.started.elapsed().as_millis() as i64
        }
    }

    /// The keys of a login of `account` (a normalised username) from
    /// `address`.
    pub fn login_keys(&self, account: &str, address: &str) -> Vec<Key> {
        let p = &self.policy;
        vec![
            Key {
                name: format!("p:{account}|{address}"),
                rule: p.pair,
            },
            Key {
                name: format!("a:{address}"),
                rule: p.address,
            },
            Key {
                name: format!("u:{account}"),
                rule: p.account,
            },
        ]
    }

    /// The key of an account creation from `address`.
    pub fn signup_keys(&self, address: &str) -> Vec<Key> {
        vec![Key {
            name: format!("s:{address}"),
            rule: self.policy.signup,
        }]
    }

    /// Counts an attempt in every key, unless one of them is blocked:
    /// then `Err(seconds to wait)` and nothing is counted.
    pub async fn reserve(&self, keys: Vec<Key>) -> Result<Reservation, u64> {
        let started = Instant::now();
        let now = self.now_ms();
        let outcome = match &self.shared {
            Some(s) => match self.reserve_shared(s, &keys, now).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!(error = %platform::problem::chain(e.as_ref()), "Redis is unavailable; throttling in memory");
                    self.reserve_memory(&keys)
                }
            },
            None => self.reserve_memory(&keys),
        };
        let m = metrics::global();
        m.count(
            "authenticator_throttle_checks_total",
            "Attempts checked by the login and sign-up throttle.",
            "",
            1,
        );
        m.count(
            "authenticator_throttle_microseconds_total",
            "Time spent checking the throttle, in microseconds.",
            "",
            started.elapsed().as_micros() as u64,
        );
        match outcome {
            0 => Ok(Reservation { keys }),
            ms => Err(ms.div_ceil(1000).max(1)),
        }
    }

    fn reserve_memory(&self, keys: &[Key]) -> u64 {
        let now = self.started.elapsed().as_millis() as i64;
        self.memory.reserve(keys, now).err().unwrap_or(0)
    }

    async fn reserve_shared(&self, s: &Shared, keys: &[Key], now: i64) -> anyhow::Result<u64> {
        let mut inv = s.reserve.prepare_invoke();
        inv.arg(now);
        for k in keys {
            inv.key(format!("{}{}", s.prefix, k.name))
                .arg(k.rule.free)
                .arg(k.rule.base.as_millis() as u64)
                .arg(k.rule.max.as_millis() as u64)
                .arg(k.rule.forget.as_millis() as u64);
        }
        let mut conn = s.conn.clone();
        let wait: i64 = tokio::time::timeout(REDIS_TIMEOUT * 2, inv.invoke_async(&mut conn))
            .await
            .map_err(|_| anyhow::anyhow!("Redis timed out"))??;
        Ok(wait.max(0) as u64)
    }

    /// Gives back an attempt that succeeded: the keys named in `forget`
    /// start over, the others count one attempt fewer.
    pub async fn release(&self, r: Reservation, forget: &[&str]) {
        if let Some(s) = &self.shared {
            let (forgotten, kept): (Vec<&Key>, Vec<&Key>) = r
                .keys
                .iter()
                .partition(|k| forget.contains(&k.name.as_str()));
            let mut inv = s.release.prepare_invoke();
            inv.arg(forgotten.len());
            for k in forgotten.into_iter().chain(kept) {
                inv.key(format!("{}{}", s.prefix, k.name));
            }
            let mut conn = s.conn.clone();
            let done: Result<Result<i64, _>, _> =
                tokio::time::timeout(REDIS_TIMEOUT * 2, inv.invoke_async(&mut conn)).await;
            if matches!(done, Ok(Ok(_))) {
                return;
            }
            tracing::warn!("Redis is unavailable; a successful attempt stays counted there");
        }
        self.memory.release(&r.keys, forget);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(keys: &[Key]) -> Vec<&str> {
        keys.iter().map(|k| k.name.as_str()).collect()
    }

    #[tokio::test]
    async fn a_pair_is_blocked_after_its_free_failures_and_other_addresses_are_not() {
        let t = Throttle::in_memory(Policy::default());
        for _ in 0..5 {
            t.reserve(t.login_keys("alice", "10.0.0.1")).await.unwrap();
        }
        let wait = t
            .reserve(t.login_keys("alice", "10.0.0.1"))
            .await
            .unwrap_err();
        assert!((1..=2).contains(&wait), "{wait}");
        // The same account from elsewhere, and others from here, go on.
        t.reserve(t.login_keys("alice", "10.0.0.2")).await.unwrap();
        t.reserve(t.login_keys("bob", "10.0.0.1")).await.unwrap();
    }

    #[tokio::test]
    async fn a_success_clears_its_pair_and_gives_back_the_address_attempt() {
        let t = Throttle::in_memory(Policy::default());
        for _ in 0..4 {
            t.reserve(t.login_keys("alice", "10.0.0.1")).await.unwrap();
        }
        let keys = t.login_keys("alice", "10.0.0.1");
        let pair = keys[0].name.clone();
        let r = t.reserve(keys).await.unwrap();
        t.release(r, &[&pair]).await;
        for _ in 0..5 {
            t.reserve(t.login_keys("alice", "10.0.0.1")).await.unwrap();
        }
        let counts = t.memory.lock();
        assert_eq!(counts.get("a:10.0.0.1").map(|c| c.0), Some(9));
        assert_eq!(names(&t.login_keys("a", "b")), ["p:a|b", "a:b", "u:a"]);
    }

    #[test]
    fn back_off_doubles_up_to_its_maximum() {
        let r = Policy::default().pair;
        assert_eq!(r.backoff_ms(4), 0);
        assert_eq!(r.backoff_ms(5), 1_000);
        assert_eq!(r.backoff_ms(6), 2_000);
        assert_eq!(r.backoff_ms(9), 16_000);
        assert_eq!(r.backoff_ms(100), 15 * 60 * 1_000);
    }
}
