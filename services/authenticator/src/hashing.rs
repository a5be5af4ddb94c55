//! bcrypt, off the async executor, on a few threads of its own that run at
//! the lowest scheduling priority (`SCHED_IDLE` on Linux), one per core.
//!
//! Why not tokio's blocking pool: a login storm would put as many hashing
//! threads as requests on the cores, at the same priority as the HTTP
//! workers, and `/healthz` (or any cheap request) would wait behind them.
//! Idle-priority threads get every cycle nobody else wants, so logins still
//! run at the machine's hash rate while other requests keep their latency.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc, Arc, Mutex,
    },
    time::Duration,
};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::error::ApiError;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of idle-priority threads fed through a channel.
struct IdlePool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl IdlePool {
    fn new(threads: usize) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("bcrypt-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            // A panicking job must not take the thread with it.
                            Ok(job) => drop(std::panic::catch_unwind(AssertUnwindSafe(job))),
                            Err(_) => break, // the pool was dropped
                        }
                    }
                })?;
        }
        Ok(Self {
            jobs: Mutex::new(tx),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move || {
            // Its caller gave up (deadline) while it queued: spare the core.
            if tx.is_closed() {
                return;
            }
            let _entered = span.enter();
            let _ = tx.send(work());
        });
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .map_err(|_| anyhow::anyhow!("the hashing pool is gone"))?;
        rx.await.context("a hashing job failed")
    }
}

fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadSchedulePolicy,
        };
        let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if let Err(e) = set_thread_priority_and_policy(
            thread_native_id(),
            thread_priority::ThreadPriority::Min,
            policy,
        ) {
            tracing::warn!(error = ?e, "could not lower the priority of a hashing thread");
        }
    }
}

/// How the hashing is bounded.
#[derive(Debug, Clone)]
pub struct HashLimits {
    /// The cost new hashes are made with (and old ones re-made at).
    pub cost: u32,
    /// The highest cost ever verified (or imported): a hash above it would
    /// keep a core busy for hours.
    pub max_cost: u32,
    /// Hashing requests that may wait for a core; one more is answered 503
    /// at once.
    pub queue: usize,
    /// How long a request may wait for its hash, queue included.
    pub deadline: Duration,
}

/// Why a hash was not made or checked.
pub enum HashError {
    /// The queue is full or the deadline passed: try again later.
    Busy,
    Failed(anyhow::Error),
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => ApiError::Overloaded {
                retry_after_seconds: 1,
            },
            HashError::Failed(e) => ApiError::Internal(e),
        }
    }
}

/// The outcome of a password check.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Wrong,
    /// Right; `stale` when the hash's cost is not the configured one (the
    /// caller re-hashes it).
    Right {
        stale: bool,
    },
}

#[derive(Clone)]
pub struct Hasher {
    limits: HashLimits,
    pool: Arc<IdlePool>,
    /// Waiting is fair (FIFO) in async land, not in the channel.
    permits: Arc<Semaphore>,
    /// Requests holding or waiting for a permit.
    outstanding: Arc<AtomicUsize>,
    cores: usize,
    /// Verified against when the username is unknown, so that unknown and
    /// known users take the same time.
    dummy_hash: Arc<String>,
}

/// Counts a request as outstanding while it lives.
struct Admitted(Arc<AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Hasher {
    pub fn new(limits: HashLimits) -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2);
        let dummy = bcrypt::hash("dummy password never matches", limits.cost).context("bcrypt")?;
        Ok(Self {
            limits,
            pool: Arc::new(IdlePool::new(cores)?),
            permits: Arc::new(Semaphore::new(cores)),
            outstanding: Arc::new(AtomicUsize::new(0)),
            cores,
            dummy_hash: Arc::new(dummy),
        })
    }

    pub fn cost(&self) -> u32 {
        self.limits.cost
    }

    /// Runs `work` on a hashing thread, if there is room in the queue and
    /// it finishes before the deadline; a job whose caller gave up before
    /// it started is skipped.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let before = self.outstanding.fetch_add(1, Ordering::AcqRel);
        let _admitted = Admitted(self.outstanding.clone());
        if before >= self.cores + self.limits.queue {
            tracing::warn!("the hashing queue is full; answering 503");
            return Err(HashError::Busy);
        }
        let job = async {
            let _permit = self
                .permits
                .acquire()
                .await
                .map_err(|e| HashError::Failed(e.into()))?;
            self.pool.run(work).await.map_err(HashError::Failed)
        };
        tokio::time::timeout(self.limits.deadline, job)
            .await
            .unwrap_or_else(|_| {
                tracing::warn!(
                    deadline_ms = self.limits.deadline.as_millis() as u64,
                    "a hash missed its deadline; answering 503"
                );
                Err(HashError::Busy)
            })
    }

    pub async fn hash(&self, password: &SecretString) -> Result<String, HashError> {
        let (pw, cost) = (password.clone(), self.limits.cost);
        self.run(move || bcrypt::hash(pw.expose_secret(), cost))
            .await?
            .context("bcrypt hash")
            .map_err(HashError::Failed)
    }

    /// Whether `password` matches `hash`; with no hash (unknown user, or an
    /// account with no usable password) or a hash above the highest cost,
    /// it spends the same time as for a real one and answers `Wrong`.
    pub async fn verify(
        &self,
        password: &SecretString,
        hash: Option<String>,
    ) -> Result<Verdict, HashError> {
        let cost = hash
            .as_deref()
            .and_then(contracts::credentials::bcrypt_cost);
        let usable = cost.is_some_and(|c| c <= self.limits.max_cost);
        if hash.is_some() && !usable {
            tracing::error!("a stored hash is above the highest verified cost; refusing it");
        }
        let hash = hash
            .filter(|_| usable)
            .unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        let pw = password.clone();
        let ok = self
            .run(move || bcrypt::verify(pw.expose_secret(), &hash).unwrap_or(false))
            .await?;
        Ok(if ok && usable {
            Verdict::Right {
                stale: cost != Some(self.limits.cost),
            }
        } else {
            Verdict::Wrong
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(queue: usize) -> HashLimits {
        HashLimits {
            cost: 4,
            max_cost: 14,
            queue,
            deadline: Duration::from_secs(10),
        }
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_match() {
        let h = Hasher::new(limits(8)).unwrap();
        let pw = secret("Sturdy-Passw0rd!");
        let hash = h.hash(&pw).await.ok().unwrap();
        assert_eq!(
            h.verify(&pw, Some(hash.clone())).await.ok(),
            Some(Verdict::Right { stale: false })
        );
        assert_eq!(
            h.verify(&secret("other"), Some(hash)).await.ok(),
            Some(Verdict::Wrong)
        );
        assert_eq!(
            h.verify(&secret("dummy password never matches"), None)
                .await
                .ok(),
            Some(Verdict::Wrong)
        );
    }

    #[tokio::test]
    async fn a_hash_of_another_cost_is_stale_and_one_above_the_ceiling_is_never_checked() {
        let h = Hasher::new(limits(8)).unwrap();
        let pw = secret("Sturdy-Passw0rd!");
        let cheap = bcrypt::hash("Sturdy-Passw0rd!", 5).unwrap();
        assert_eq!(
            h.verify(&pw, Some(cheap)).await.ok(),
            Some(Verdict::Right { stale: true })
        );
        // Cost 31 would take a day; it answers at once, as wrong.
        let slow = bcrypt::hash("Sturdy-Passw0rd!", 4)
            .unwrap()
            .replacen("$04$", "$31$", 1);
        let started = std::time::Instant::now();
        assert_eq!(h.verify(&pw, Some(slow)).await.ok(), Some(Verdict::Wrong));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let h = Hasher::new(HashLimits {
            cost: 10,
            ..limits(0)
        })
        .unwrap();
        let pw = secret("Sturdy-Passw0rd!");
        // Fill every core, then one more is refused without waiting.
        let running: Vec<_> = (0..h.cores)
            .map(|_| {
                let (h, pw) = (h.clone(), pw.clone());
                tokio::spawn(async move { h.hash(&pw).await.is_ok() })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(matches!(h.hash(&pw).await, Err(HashError::Busy)));
        for r in running {
            assert!(r.await.unwrap());
        }
        assert!(h.hash(&pw).await.is_ok(), "room again once they finish");
    }
}
