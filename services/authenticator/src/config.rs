//! The authenticator's settings: the common ones plus its own. Every
//! variable is listed in the README.

use std::time::Duration;

use platform::config::{flag, parse_or, secret, var_or, CommonConfig};
use secrecy::{ExposeSecret, SecretString};

pub const DEFAULT_PORT: u16 = 5000;

#[derive(Debug, Clone)]
pub struct BootstrapAdmin {
    pub username: String,
    pub email: String,
    pub password: SecretString,
}

#[derive(Debug, Clone)]
pub struct LoginLimits {
    /// Failed logins allowed per username within `window`.
    pub per_username: usize,
    /// Failed logins allowed per client address within `window`.
    pub per_address: usize,
    pub window: Duration,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonConfig,
    /// `iss` of the session tokens.
    pub issuer: String,
    pub session_ttl: Duration,
    pub bcrypt_cost: u32,
    pub signing_key_pem: Option<SecretString>,
    pub previous_keys_pem: Option<SecretString>,
    pub require_signing_key: bool,
    pub bootstrap_admin: Option<BootstrapAdmin>,
    pub login_limits: LoginLimits,
    /// Take the client address from `X-Forwarded-For` (behind a trusted proxy only).
    pub trust_forwarded_for: bool,
    pub http_workers: usize,
    pub outbox_poll: Duration,
    /// Where the safekeeper's JWKS is: its access tokens with `admin:user`
    /// may administer accounts (the user directory's client credentials).
    pub safekeeper_url: String,
    pub safekeeper_issuer: String,
    pub access_audience: String,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let common = CommonConfig::from_env("authenticator", DEFAULT_PORT, "authenticator")?;
        let bcrypt_cost: u32 = parse_or("BCRYPT_COST", 12)?;
        if !(4..=31).contains(&bcrypt_cost) {
            anyhow::bail!("BCRYPT_COST must be between 4 and 31");
        }
        let bootstrap_admin = match (
            std::env::var("BOOTSTRAP_ADMIN_USERNAME")
                .ok()
                .filter(|v| !v.is_empty()),
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
            bcrypt_cost,
            signing_key_pem: secret("SIGNING_KEY")?,
            previous_keys_pem: secret("PREVIOUS_SIGNING_KEYS")?,
            require_signing_key: flag("REQUIRE_SIGNING_KEY", common.is_production()),
            bootstrap_admin,
            login_limits: LoginLimits {
                per_username: parse_or("LOGIN_MAX_FAILURES", 5)?,
                per_address: parse_or("LOGIN_MAX_FAILURES_PER_ADDRESS", 50)?,
                window: Duration::from_secs(parse_or("LOGIN_FAILURE_WINDOW_SECONDS", 900)?),
            },
            trust_forwarded_for: flag("TRUST_FORWARDED_FOR", false),
            http_workers: parse_or("HTTP_WORKERS", default_workers)?,
            outbox_poll: Duration::from_millis(parse_or("OUTBOX_POLL_MS", 500)?),
            safekeeper_issuer: var_or(
                "SAFEKEEPER_ISSUER",
                &var_or("SAFEKEEPER_URL", "http://127.0.0.1:5001"),
            ),
            safekeeper_url: var_or("SAFEKEEPER_URL", "http://127.0.0.1:5001"),
            access_audience: var_or("ACCESS_TOKEN_AUDIENCE", "platform"),
            common,
        })
    }

    pub fn signing_key_pem(&self) -> Option<&str> {
        self.signing_key_pem.as_ref().map(|s| s.expose_secret())
    }
}
