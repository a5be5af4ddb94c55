//! bcrypt, off the async executor and bounded to one hash per core, so a
//! login storm queues instead of starving the workers or the memory.

use std::sync::Arc;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::error::ApiError;

#[derive(Clone)]
pub struct Hasher {
    cost: u32,
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
            permits: Arc::new(Semaphore::new(cores)),
            dummy_hash: Arc::new(dummy),
        })
    }

    pub async fn hash(&self, password: &SecretString) -> Result<String, ApiError> {
        let _permit = self.permits.acquire().await.map_err(anyhow::Error::from)?;
        let (pw, cost) = (password.clone(), self.cost);
        let hashed = platform::db::blocking(move || bcrypt::hash(pw.expose_secret(), cost)).await?;
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
        let ok = platform::db::blocking(move || {
            bcrypt::verify(pw.expose_secret(), &hash).unwrap_or(false)
        })
        .await?;
        Ok(ok && known)
    }
}
