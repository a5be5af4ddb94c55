//! The access-rule service's settings: the common ones, the rules'
//! thresholds (a JSON file named by `RULES_FILE`, each value overridable by
//! its environment variable), who may use the operator API, and how event
//! producers are authenticated and limited. Every
//! variable is listed in docs/configuration.md (the common ones) and the service's README.

use std::{path::Path, str::FromStr, time::Duration};

use anyhow::Context;
use platform::config::{parse_or, secret, var_or, CommonConfig};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{
    domain::{Ratio, RulesConfig, TripwireConfig},
    writer::BatchSettings,
};

pub const DEFAULT_PORT: u16 = 5005;

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonConfig,
    pub rules: RulesConfig,
    /// A static bearer token for the operator API (automation, tests).
    pub operator_token: Option<SecretString>,
    /// Account ids whose authenticator session tokens may use the operator
    /// API (besides superusers, known from `iam.user.v1`).
    pub operator_account_ids: Vec<String>,
    /// Where the safekeeper serves its JWKS (producers' access tokens).
    pub safekeeper_url: String,
    /// `iss` of the safekeeper's access tokens.
    pub safekeeper_issuer: String,
    /// `aud` of the safekeeper's access tokens.
    pub access_audience: String,
    /// Events per second each producer (client id) may post; 0: no limit.
    pub producer_rate: f64,
    /// Events a producer may post at once above its rate.
    pub producer_burst: f64,
    /// `/canmessage` and `/canpurchase` need an access token with
    /// `read:restriction`.
    pub require_read_token: bool,
    /// `iss` of the authenticator's session tokens.
    pub auth_issuer: String,
    /// Where the authenticator serves its JWKS.
    pub authenticator_url: String,
    pub consumer_group: String,
    pub http_workers: usize,
    pub outbox_poll: Duration,
    /// How often each replica reloads the rules' tripwire state (trips and
    /// resets made by other replicas show within this delay).
    pub rules_refresh: Duration,
    /// Least time between two tripwire counts of one rule in a replica.
    pub tripwire_check_interval: Duration,
    /// Entries of the checks' cache (0: every check reads the database).
    pub check_cache_entries: usize,
    /// Group commit of `POST /event`.
    pub batch: BatchSettings,
    /// How long a stored event (the record that makes a resent event_id
    /// idempotent) is kept; `None`: for ever.
    pub event_retention: Option<Duration>,
    /// When pruning runs, and how long published outbox rows are kept.
    pub retention: platform::retention::Settings,
}

/// The rules file: every key optional, the defaults are the rules of the User Access Management design.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    scam_flag_limit: Option<i64>,
    card_min_count: Option<i64>,
    zip_ratio_limit: Option<f64>,
    chargeback_ratio_limit: Option<f64>,
    tripwire_window_seconds: Option<u64>,
    tripwire_ratio: Option<f64>,
    tripwire_min_population: Option<i64>,
    tripwire_suspend_seconds: Option<u64>,
}

fn pick<T>(env: &str, from_file: Option<T>, default: T) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    parse_or(env, from_file.unwrap_or(default))
}

/// Reads the rules from `file` (if any) and the environment.
pub fn load_rules(file: Option<&Path>) -> anyhow::Result<RulesConfig> {
    let f: RulesFile = match file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading RULES_FILE={}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("RULES_FILE={} is not a valid rules file", p.display()))?
        }
        None => RulesFile::default(),
    };
    let d = RulesConfig::default();
    let rules = RulesConfig {
        scam_flag_limit: pick("SCAM_FLAG_LIMIT", f.scam_flag_limit, d.scam_flag_limit)?,
        card_min_count: pick("CARD_MIN_COUNT", f.card_min_count, d.card_min_count)?,
        zip_ratio_limit: Ratio::parse(
            "ZIP_RATIO_LIMIT",
            pick(
                "ZIP_RATIO_LIMIT",
                f.zip_ratio_limit,
                d.zip_ratio_limit.as_f64(),
            )?,
        )?,
        chargeback_ratio_limit: Ratio::parse(
            "CHARGEBACK_RATIO_LIMIT",
            pick(
                "CHARGEBACK_RATIO_LIMIT",
                f.chargeback_ratio_limit,
                d.chargeback_ratio_limit.as_f64(),
            )?,
        )?,
        tripwire: TripwireConfig {
            window: Duration::from_secs(pick(
                "TRIPWIRE_WINDOW_SECONDS",
                f.tripwire_window_seconds,
                d.tripwire.window.as_secs(),
            )?),
            ratio: Ratio::parse(
                "TRIPWIRE_RATIO",
                pick(
                    "TRIPWIRE_RATIO",
                    f.tripwire_ratio,
                    d.tripwire.ratio.as_f64(),
                )?,
            )?,
            min_population: pick(
                "TRIPWIRE_MIN_POPULATION",
                f.tripwire_min_population,
                d.tripwire.min_population,
            )?,
            suspend: Duration::from_secs(pick(
                "TRIPWIRE_SUSPEND_SECONDS",
                f.tripwire_suspend_seconds,
                d.tripwire.suspend.as_secs(),
            )?),
        },
    };
    if rules.scam_flag_limit < 1 || rules.card_min_count < 1 {
        anyhow::bail!("SCAM_FLAG_LIMIT and CARD_MIN_COUNT must be at least 1");
    }
    if rules.tripwire.min_population < 0
        || rules.tripwire.window.is_zero()
        || rules.tripwire.suspend.is_zero()
    {
        anyhow::bail!(
            "TRIPWIRE_WINDOW_SECONDS and TRIPWIRE_SUSPEND_SECONDS must be positive, \
             TRIPWIRE_MIN_POPULATION not negative"
        );
    }
    Ok(rules)
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let common = CommonConfig::from_env("access-rule", DEFAULT_PORT, "access_rule")?;
        let rules_file = platform::config::var("RULES_FILE").filter(|v| !v.is_empty());
        let rules = load_rules(rules_file.as_deref().map(Path::new))?;
        let operator_token = secret("OPERATOR_TOKEN")?;
        if operator_token
            .as_ref()
            .is_some_and(|t| t.expose_secret().len() < 16)
        {
            anyhow::bail!("OPERATOR_TOKEN must be at least 16 characters");
        }
        let default_workers = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2);
        let authenticator_url = var_or("AUTHENTICATOR_URL", "http://127.0.0.1:5000");
        let batch = BatchSettings {
            writers: parse_or("EVENT_WRITERS", 2)?,
            max: parse_or("EVENT_BATCH_MAX", 64)?,
            linger: Duration::from_micros(parse_or("EVENT_BATCH_LINGER_US", 500)?),
            queue: parse_or("EVENT_QUEUE", 10_000)?,
            max_wait: match parse_or::<u64>("EVENT_QUEUE_WAIT_MS", 25)? {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
        };
        if batch.writers > 64 || !(1..=1000).contains(&batch.max) || batch.queue == 0 {
            anyhow::bail!(
                "EVENT_WRITERS must be 0 to 64, EVENT_BATCH_MAX 1 to 1000, EVENT_QUEUE at least 1"
            );
        }
        let event_retention = platform::retention::days_var("EVENT_RETENTION_DAYS", 30.0)?;
        if platform::config::var("OPERATOR_USERNAMES").is_some() {
            // A username is anyone's to register: refuse rather than
            // quietly drop the setting.
            anyhow::bail!(
                "OPERATOR_USERNAMES is no longer read: name operators by account id \
                 (OPERATOR_ACCOUNT_IDS); superusers are operators"
            );
        }
        let operator_account_ids: Vec<String> = var_or("OPERATOR_ACCOUNT_IDS", "")
            .split(',')
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if let Some(bad) = operator_account_ids
            .iter()
            .find(|id| uuid::Uuid::parse_str(id).is_err())
        {
            anyhow::bail!("OPERATOR_ACCOUNT_IDS must list account ids (UUIDs), not {bad:?}");
        }
        let safekeeper_url = var_or("SAFEKEEPER_URL", "http://127.0.0.1:5001");
        let producer_rate: f64 = parse_or("PRODUCER_EVENTS_PER_SECOND", 20_000.0)?;
        let producer_burst: f64 = parse_or("PRODUCER_BURST", 40_000.0)?;
        let rate_ok = producer_rate.is_finite() && producer_rate >= 0.0;
        let burst_ok = producer_burst.is_finite() && producer_burst >= 1.0;
        if !rate_ok || !burst_ok {
            anyhow::bail!(
                "PRODUCER_EVENTS_PER_SECOND must be 0 (no limit) or more, PRODUCER_BURST at least 1"
            );
        }
        Ok(Self {
            rules,
            operator_token,
            operator_account_ids,
            safekeeper_issuer: var_or("SAFEKEEPER_ISSUER", &safekeeper_url),
            safekeeper_url: safekeeper_url.trim_end_matches('/').to_owned(),
            access_audience: var_or("ACCESS_TOKEN_AUDIENCE", "platform"),
            producer_rate,
            producer_burst,
            require_read_token: parse_or("REQUIRE_READ_TOKEN", false)?,
            auth_issuer: var_or("AUTH_ISSUER", &authenticator_url),
            authenticator_url: authenticator_url.trim_end_matches('/').to_owned(),
            consumer_group: var_or("CONSUMER_GROUP", "access-rule"),
            http_workers: parse_or("HTTP_WORKERS", default_workers)?,
            outbox_poll: Duration::from_millis(parse_or("OUTBOX_POLL_MS", 500)?),
            rules_refresh: Duration::from_millis(parse_or("RULES_REFRESH_MS", 1000)?),
            tripwire_check_interval: Duration::from_millis(parse_or(
                "TRIPWIRE_CHECK_INTERVAL_MS",
                50,
            )?),
            check_cache_entries: parse_or("CHECK_CACHE_ENTRIES", 1_000_000)?,
            batch,
            event_retention,
            retention: platform::retention::Settings::from_env()?,
            common,
        })
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.authenticator_url)
    }

    /// The safekeeper's JWKS, for producers' and readers' access tokens.
    pub fn access_jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.safekeeper_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rules_file_overrides_the_defaults_and_rejects_unknown_keys() {
        let dir = testkit::TempDir::new("rules");
        let p = dir.0.join("rules.json");
        std::fs::write(&p, r#"{"scam_flag_limit": 3, "tripwire_ratio": 0.1}"#).unwrap();
        let r = load_rules(Some(&p)).unwrap();
        assert_eq!(r.scam_flag_limit, 3);
        assert_eq!(r.tripwire.ratio, Ratio::parse("x", 0.1).unwrap());
        assert_eq!(r.card_min_count, 3);
        std::fs::write(&p, r#"{"scam_flags": 3}"#).unwrap();
        assert!(load_rules(Some(&p)).is_err());
        std::fs::write(&p, r#"{"zip_ratio_limit": 1.5}"#).unwrap();
        assert!(load_rules(Some(&p)).is_err());
    }
}
