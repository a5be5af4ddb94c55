//! The authenticator's settings: the common ones plus its own. Every
//! variable is listed in docs/configuration.md (the common ones) and the service's README.

use std::time::Duration;

use platform::config::{flag, parse_or, secret, var_or, CommonConfig};
use secrecy::{ExposeSecret, SecretString};

use platform::address::TrustedProxies;

use crate::{
    hashing::HashLimits,
    ratelimit::{Policy, Rule},
};

pub const DEFAULT_PORT: u16 = 5000;

#[derive(Debug, Clone)]
pub struct BootstrapAdmin {
    pub username: String,
    pub email: String,
    pub password: SecretString,
}

/// Where the throttle keeps its counts.
#[derive(Debug, Clone)]
pub struct ThrottleStore {
    /// Redis, shared by every replica; `None`: this replica's memory.
    pub redis_url: Option<String>,
    /// Prefix of the throttle's Redis keys (replicas of one deployment
    /// share it).
    pub key_prefix: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonConfig,
    /// `iss` of the session tokens.
    pub issuer: String,
    pub session_ttl: Duration,
    pub signing_key_pem: Option<SecretString>,
    pub previous_keys_pem: Option<SecretString>,
    pub require_signing_key: bool,
    pub bootstrap_admin: Option<BootstrapAdmin>,
    pub throttle: Policy,
    pub throttle_store: ThrottleStore,
    /// The password hashing's bounds (cost, highest cost, queue, deadline).
    pub hashing: HashLimits,
    /// Most registration notices to the superusers in a clock hour (the
    /// next says they pause; 0: none).
    pub registration_notices_per_hour: u32,
    /// The proxies in front of this service (`TRUSTED_PROXIES`, CIDRs):
    /// their `X-Forwarded-For` entries name the client.
    pub trusted_proxies: TrustedProxies,
    pub http_workers: usize,
    pub outbox_poll: Duration,
    /// Where the safekeeper's JWKS is: a person's access tokens with
    /// `admin:user` administer accounts, a service's own token with
    /// `provision:user` (the user directory's client credentials) ordinary
    /// accounts only.
    pub safekeeper_url: String,
    pub safekeeper_issuer: String,
    pub access_audience: String,
    /// When pruning runs, and how long published outbox rows are kept.
    pub retention: platform::retention::Settings,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let common = CommonConfig::from_env("authenticator", DEFAULT_PORT, "authenticator")?;
        let bcrypt_cost: u32 = parse_or("BCRYPT_COST", 12)?;
        let bcrypt_max_cost: u32 = parse_or("BCRYPT_MAX_COST", 14)?;
        if !(4..=31).contains(&bcrypt_cost) || !(bcrypt_cost..=31).contains(&bcrypt_max_cost) {
            anyhow::bail!(
                "BCRYPT_COST must be between 4 and 31, and BCRYPT_MAX_COST between it and 31"
            );
        }
        let defaults = Policy::default();
        let forget = Duration::from_secs(parse_or(
            "LOGIN_FAILURE_WINDOW_SECONDS",
            defaults.pair.forget.as_secs(),
        )?);
        let throttle = Policy {
            pair: Rule {
                free: parse_or("LOGIN_MAX_FAILURES", defaults.pair.free)?,
                forget,
                ..defaults.pair
            },
            address: Rule {
                free: parse_or("LOGIN_MAX_FAILURES_PER_ADDRESS", defaults.address.free)?,
                forget,
                ..defaults.address
            },
            account: Rule {
                free: parse_or("LOGIN_ACCOUNT_CEILING", defaults.account.free)?,
                ..defaults.account
            },
            signup: Rule {
                free: parse_or("SIGNUP_MAX_PER_ADDRESS", defaults.signup.free)?,
                ..defaults.signup
            },
        };
        if flag("TRUST_FORWARDED_FOR", false) {
            anyhow::bail!(
                "TRUST_FORWARDED_FOR is gone: list the proxies in front of the authenticator in TRUSTED_PROXIES (CIDRs)"
            );
        }
        let trusted_proxies = TrustedProxies::from_env()?;
        let bootstrap_admin = match (
            platform::config::var("BOOTSTRAP_ADMIN_USERNAME").filter(|v| !v.is_empty()),
            secret("BOOTSTRAP_ADMIN_PASSWORD")?,
        ) {
            (Some(username), Some(password)) => Some(BootstrapAdmin {
                email: var_or("BOOTSTRAP_ADMIN_EMAIL", &format!("{username}@example.com")),
                username,
                password,
            }),
            (Some(_), None) => {
                anyhow::bail!("BOOTSTRAP_ADMIN_USERNAME is set but BOOTSTRAP_ADMIN_PASSWORD is not")
            }
            _ => None,
        };
        let default_workers = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2);
        Ok(Self {
            issuer: var_or("AUTH_ISSUER", &format!("http://127.0.0.1:{}", common.port)),
            session_ttl: Duration::from_secs(parse_or("SESSION_TOKEN_TTL_SECONDS", 3600)?),
            hashing: HashLimits {
                cost: bcrypt_cost,
                max_cost: bcrypt_max_cost,
                queue: parse_or("HASH_QUEUE_MAX", 256)?,
                deadline: Duration::from_millis(parse_or("HASH_DEADLINE_MS", 10_000)?),
            },
            registration_notices_per_hour: parse_or("REGISTRATION_NOTICES_PER_HOUR", 60)?,
            signing_key_pem: secret("SIGNING_KEY")?,
            previous_keys_pem: secret("PREVIOUS_SIGNING_KEYS")?,
            require_signing_key: flag("REQUIRE_SIGNING_KEY", common.is_production()),
            bootstrap_admin,
            throttle,
            throttle_store: ThrottleStore {
                redis_url: platform::config::var("REDIS_URL").filter(|v| !v.is_empty()),
                key_prefix: var_or("THROTTLE_KEY_PREFIX", "authenticator:throttle:"),
            },
            trusted_proxies,
            http_workers: parse_or("HTTP_WORKERS", default_workers)?,
            outbox_poll: Duration::from_millis(parse_or("OUTBOX_POLL_MS", 500)?),
            safekeeper_issuer: var_or(
                "SAFEKEEPER_ISSUER",
                &var_or("SAFEKEEPER_URL", "http://127.0.0.1:5001"),
            ),
            safekeeper_url: var_or("SAFEKEEPER_URL", "http://127.0.0.1:5001"),
            access_audience: var_or("ACCESS_TOKEN_AUDIENCE", "platform"),
            retention: platform::retention::Settings::from_env()?,
            common,
        })
    }

    pub fn signing_key_pem(&self) -> Option<&str> {
        self.signing_key_pem.as_ref().map(|s| s.expose_secret())
    }
}
