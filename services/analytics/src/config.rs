//! The analytics service's settings: the common ones plus its own. Every
//! variable is listed in docs/configuration.md (the common ones) and the
//! service's README.

use chrono_tz::Tz;
use platform::config::{parse_or, var_or, CommonConfig};

pub const DEFAULT_PORT: u16 = 5007;

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
    /// Consumer group of the task, accounting and user topics; a new group
    /// replays them from the earliest offset (and, the read models being
    /// idempotent, ends with the same figures).
    pub consumer_group: String,
    /// The time zone that says which business day is today
    /// (`BUSINESS_TIME_ZONE`, an IANA name, default UTC): set it to the
    /// accounting service's `CLOSE_TIME_ZONE`, in which the transactions'
    /// business days are written.
    pub business_time_zone: Tz,
    /// Verified access tokens each replica keeps in memory (0: none).
    pub caller_cache_entries: usize,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let common = CommonConfig::from_env("analytics", DEFAULT_PORT, "analytics")?;
        let default_workers = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2);
        let safekeeper_url = var_or("SAFEKEEPER_URL", "http://127.0.0.1:5001")
            .trim_end_matches('/')
            .to_owned();
        let zone = var_or("BUSINESS_TIME_ZONE", "UTC");
        let business_time_zone: Tz = zone.trim().parse().map_err(|_| {
            anyhow::anyhow!(
                "BUSINESS_TIME_ZONE={zone:?} is not an IANA time zone such as Europe/Berlin"
            )
        })?;
        Ok(Self {
            http_workers: parse_or("HTTP_WORKERS", default_workers)?,
            safekeeper_issuer: var_or("SAFEKEEPER_ISSUER", &safekeeper_url),
            dashboard: dashboard::Config::from_env(
                "analytics",
                &safekeeper_url,
                "http://127.0.0.1:5007",
                "read:analytics",
            )?,
            safekeeper_url,
            access_audience: var_or("ACCESS_TOKEN_AUDIENCE", "platform"),
            consumer_group: var_or("CONSUMER_GROUP", "analytics"),
            business_time_zone,
            caller_cache_entries: parse_or("CALLER_CACHE_ENTRIES", 100_000)?,
            common,
        })
    }

    /// The safekeeper's JWKS.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.safekeeper_url)
    }
}
