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
    sync::{mpsc, Arc, Mutex},
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

#[derive(Clone)]
pub struct Hasher {
    cost: u32,
    pool: Arc<IdlePool>,
    /// Waiting is fair (FIFO) and bounded in async land, not in the channel.
    permits: Arc<Semaphore>,
    /// Verified against when the username is unknown, so that unknown and
    /// known users take the same time.
    dummy_hash: Arc<String>,
}

impl Hasher {
    pub fn new(cost: u32) -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2);
        let dummy = bcrypt::hash("dummy password never matches", cost).context("bcrypt")?;
        Ok(Self {
            cost,
            pool: Arc::new(IdlePool::new(cores)?),
            permits: Arc::new(Semaphore::new(cores)),
            dummy_hash: Arc::new(dummy),
        })
    }

    pub async fn hash(&self, password: &SecretString) -> Result<String, ApiError> {
        let _permit = self.permits.acquire().await.map_err(anyhow::Error::from)?;
        let (pw, cost) = (password.clone(), self.cost);
        let hashed = self
            .pool
            .run(move || bcrypt::hash(pw.expose_secret(), cost))
            .await?;
        Ok(hashed.context("bcrypt hash")?)
    }

    /// True when `password` matches `hash`; with no hash (unknown user, or
    /// an account with no usable password) it spends the same time and
    /// answers false.
    pub async fn verify(
        &self,
        password: &SecretString,
        hash: Option<String>,
    ) -> Result<bool, ApiError> {
        let _permit = self.permits.acquire().await.map_err(anyhow::Error::from)?;
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        let pw = password.clone();
        let ok = self
            .pool
            .run(move || bcrypt::verify(pw.expose_secret(), &hash).unwrap_or(false))
            .await?;
        Ok(ok && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_match() {
        let h = Hasher::new(4).unwrap();
        let pw = SecretString::from("Sturdy-Passw0rd!".to_owned());
        let hash = h.hash(&pw).await.unwrap();
        assert!(h.verify(&pw, Some(hash.clone())).await.unwrap());
        assert!(!h
            .verify(&SecretString::from("other".to_owned()), Some(hash))
            .await
            .unwrap());
        assert!(!h
            .verify(
                &SecretString::from("dummy password never matches".to_owned()),
                None
            )
            .await
            .unwrap());
    }
}
