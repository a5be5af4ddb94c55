//! The accounting service's settings: the common ones plus its own. Every
//! variable is listed in docs/configuration.md (the common ones) and the
//! service's README.

use std::time::Duration;

use chrono_tz::Tz;
use platform::config::{flag, parse_or, var_or, CommonConfig};

pub const DEFAULT_PORT: u16 = 5006;

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonConfig,
    pub http_workers: usize,
    /// Where the safekeeper serves the JWKS that verifies access tokens.
    pub safekeeper_url: String,
    /// The dashboard's OAuth2 client (`DASHBOARD_*`); `None` without one.
    pub dashboard: Option<dashboard::Config>,
    /// Expected `iss` of access tokens.
    pub safekeeper_issuer: String,
    /// Expected `aud` of access tokens.
    pub access_audience: String,
    /// Consumer group of `task.v1` and the users read model; a new group
    /// replays the topics from the earliest offset (and, the ledger being
    /// idempotent, ends with the same balances).
    pub consumer_group: String,
    /// The local hour (0-23) at which the business day that just ended is
    /// closed (`CLOSE_HOUR`, default 0).
    pub close_hour: u32,
    /// The time zone of business days and of the close (`CLOSE_TIME_ZONE`,
    /// an IANA name, default UTC).
    pub close_time_zone: Tz,
    /// Whether this process runs the close on its own (`CLOSE_LOOP`,
    /// default true); the operator route works either way.
    pub close_loop: bool,
    /// How often the outbox relay polls when nothing nudged it.
    pub outbox_poll: Duration,
    /// Verified access tokens each replica keeps in memory (0: none).
    pub caller_cache_entries: usize,
    /// Pruning of published outbox rows ([`platform::retention`]). The
    /// ledger itself is never pruned.
    pub retention: platform::retention::Settings,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let common = CommonConfig::from_env("accounting", DEFAULT_PORT, "accounting")?;
        let default_workers = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2);
        let safekeeper_url = var_or("SAFEKEEPER_URL", "http://127.0.0.1:5001")
            .trim_end_matches('/')
            .to_owned();
        let close_hour: u32 = parse_or("CLOSE_HOUR", 0)?;
        anyhow::ensure!(close_hour < 24, "CLOSE_HOUR must be between 0 and 23");
        let zone = var_or("CLOSE_TIME_ZONE", "UTC");
        let close_time_zone: Tz = zone.trim().parse().map_err(|_| {
            anyhow::anyhow!(
                "CLOSE_TIME_ZONE={zone:?} is not an IANA time zone such as Europe/Berlin"
            )
        })?;
        Ok(Self {
            http_workers: parse_or("HTTP_WORKERS", default_workers)?,
            safekeeper_issuer: var_or("SAFEKEEPER_ISSUER", &safekeeper_url),
            dashboard: dashboard::Config::from_env(
                "accounting",
                &safekeeper_url,
                "http://127.0.0.1:5006",
                "read:accounting su_read:accounting",
            )?,
            safekeeper_url,
            access_audience: var_or("ACCESS_TOKEN_AUDIENCE", "platform"),
            consumer_group: var_or("CONSUMER_GROUP", "accounting"),
            close_hour,
            close_time_zone,
            close_loop: flag("CLOSE_LOOP", true),
            outbox_poll: Duration::from_millis(parse_or("OUTBOX_POLL_MS", 500)?),
            caller_cache_entries: parse_or("CALLER_CACHE_ENTRIES", 100_000)?,
            retention: platform::retention::Settings::from_env()?,
            common,
        })
    }

    /// The safekeeper's JWKS.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.safekeeper_url)
    }
}
