//! The task service's settings: the common ones plus its own. Every
//! variable is listed in docs/configuration.md (the common ones) and the service's README.

use std::time::Duration;

use anyhow::Context;
use platform::config::{parse_or, var_or, CommonConfig};

use crate::domain::{Price, Pricing};

pub const DEFAULT_PORT: u16 = 5002;

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonConfig,
    pub http_workers: usize,
    /// Where the safekeeper serves the JWKS that verifies access tokens.
    pub safekeeper_url: String,
    /// Expected `iss` of access tokens.
    pub safekeeper_issuer: String,
    /// Expected `aud` of access tokens.
    pub access_audience: String,
    /// Consumer group of the users read model; a new group replays both
    /// topics from the earliest offset.
    pub consumer_group: String,
    /// The role whose holders the summary lists even without tasks.
    pub summary_role: String,
    /// Verified access tokens and read-model users each replica keeps in
    /// memory (0: none; every request verifies and reads the database).
    pub caller_cache_entries: usize,
    /// `/v1/task/own` pages each replica keeps in memory (0: none); each
    /// at most [`crate::cache::PAGE_MAX_BYTES`].
    pub page_cache_entries: usize,
    /// The price of a task created without one (`TASK_DEFAULT_PRICE_CENTS`).
    pub default_price: Price,
    /// The assignment fee's and completion reward's ratios to the price.
    pub pricing: Pricing,
    /// How often the outbox relay looks for `task.v1` events (a commit
    /// also wakes it at once).
    pub outbox_poll: Duration,
    /// When pruning runs, and how long published outbox rows are kept.
    pub retention: platform::retention::Settings,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let common = CommonConfig::from_env("task", DEFAULT_PORT, "task")?;
        let default_workers = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2);
        let safekeeper_url = var_or("SAFEKEEPER_URL", "http://127.0.0.1:5001")
            .trim_end_matches('/')
            .to_owned();
        Ok(Self {
            http_workers: parse_or("HTTP_WORKERS", default_workers)?,
            safekeeper_issuer: var_or("SAFEKEEPER_ISSUER", &safekeeper_url),
            safekeeper_url,
            access_audience: var_or("ACCESS_TOKEN_AUDIENCE", "platform"),
            consumer_group: var_or("CONSUMER_GROUP", "task"),
            summary_role: var_or("SUMMARY_ROLE", "Employee"),
            caller_cache_entries: parse_or("CALLER_CACHE_ENTRIES", 100_000)?,
            page_cache_entries: parse_or("PAGE_CACHE_ENTRIES", 2_048)?,
            default_price: Price::new(parse_or("TASK_DEFAULT_PRICE_CENTS", 1_000)?)
                .map_err(|e| anyhow::anyhow!("TASK_DEFAULT_PRICE_CENTS: {}", e.message))?,
            pricing: Pricing::new(
                parse_or("TASK_ASSIGNMENT_FEE_RATIO", 0.5)?,
                parse_or("TASK_COMPLETION_REWARD_RATIO", 1.0)?,
            )
            .map_err(anyhow::Error::msg)
            .context("the task prices' ratios")?,
            outbox_poll: Duration::from_millis(parse_or("OUTBOX_POLL_MS", 500)?),
            retention: platform::retention::Settings::from_env()?,
            common,
        })
    }

    /// The safekeeper's JWKS.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.safekeeper_url)
    }
}
