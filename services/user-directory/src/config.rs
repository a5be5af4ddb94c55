//! The user directory's settings: the common ones plus its own. Every
//! variable is listed in docs/configuration.md (the common ones) and the service's README.

use std::{path::PathBuf, time::Duration};

use platform::{
    config::{flag, parse_or, secret, var_or, CommonConfig},
    retention::days_var,
};
use secrecy::{ExposeSecret, SecretString};

use platform::address::TrustedProxies;

pub const DEFAULT_PORT: u16 = 5003;
/// The client secret `make up` gives the directory (development only).
pub const DEV_CLIENT_SECRET: &str = "user-directory-dev-secret";

/// Which identity provider holds the accounts.
#[derive(Debug, Clone)]
pub enum ProviderSettings {
    /// Our authenticator, administered with a client-credentials access
    /// token (scopes `provision:user` and `login:relay`) from the safekeeper.
    Authenticator {
        authenticator_url: String,
        safekeeper_url: String,
        client_id: String,
        client_secret: SecretString,
    },
    /// The WorkOS User Management API.
    WorkOs {
        base_url: String,
        api_key: SecretString,
        client_id: String,
    },
}

impl ProviderSettings {
    pub fn name(&self) -> &'static str {
        match self {
            ProviderSettings::Authenticator { .. } => "authenticator",
            ProviderSettings::WorkOs { .. } => "workos",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ImportLimits {
    pub max_bytes: usize,
    pub max_rows: usize,
    /// Files with more rows run as a background job.
    pub sync_rows: usize,
    /// Rows in flight at once.
    pub concurrency: usize,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonConfig,
    pub http_workers: usize,
    pub outbox_poll: Duration,
    /// `iss` of the organization admins' tokens.
    pub issuer: String,
    pub org_token_ttl: Duration,
    /// How long an organization admin's refresh token may be used after
    /// it was issued (`ADMIN_REFRESH_TOKEN_TTL_SECONDS`, default 30 days);
    /// each refresh issues a new one with a full lifetime.
    pub admin_refresh_ttl: Duration,
    pub signing_key_pem: Option<SecretString>,
    pub previous_keys_pem: Option<SecretString>,
    pub require_signing_key: bool,
    /// The roles and organizations file (TOML or JSON), reread on change.
    pub directory_config: PathBuf,
    pub provider: ProviderSettings,
    pub provider_timeout: Duration,
    pub webhook_secret: Option<SecretString>,
    /// Signed timestamps further than this from now are refused.
    pub webhook_tolerance: Duration,
    /// How often the reconciler looks for work.
    pub reconcile_every: Duration,
    /// A creation still open after this long is compensated.
    pub saga_lease: Duration,
    /// How often the WorkOS Events API is read.
    pub events_poll: Duration,
    pub consumer_group: String,
    pub import: ImportLimits,
    /// Proxies whose `X-Forwarded-For` names the end user's address.
    pub trusted_proxies: TrustedProxies,
    /// The operators' token that `POST /org/create` needs for an
    /// organization named in the directory's file (`ORG_BOOTSTRAP_TOKEN`);
    /// unset, such organizations cannot be created through the API.
    pub org_bootstrap_token: Option<SecretString>,
    /// When pruning runs, and how long published outbox rows are kept.
    pub retention: platform::retention::Settings,
    /// What else is pruned, and when ([`RetentionWindows`]).
    pub windows: RetentionWindows,
}

/// How long finished work is kept before it is pruned; `None`: for ever.
#[derive(Debug, Clone)]
pub struct RetentionWindows {
    /// Applied provider events, after their receipt
    /// (`PROVIDER_EVENT_RETENTION_DAYS`, default 7): an event delivered
    /// again within it is recognised and skipped; later it is applied
    /// again, which changes nothing older than what a user already has.
    pub provider_events: Option<Duration>,
    /// Finished import jobs, after they finished
    /// (`IMPORT_JOB_RETENTION_DAYS`, default 30): `GET /v1/imports/{id}`
    /// answers 404 afterwards.
    pub import_jobs: Option<Duration>,
    /// Completed and failed creations, and provider tasks done, after
    /// their last change (`SAGA_RETENTION_DAYS`, default 30). Compensated
    /// creations are kept: they are how the directory recognises an
    /// account it made and removed, to take it back on a retry.
    pub saga: Option<Duration>,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let common = CommonConfig::from_env("user-directory", DEFAULT_PORT, "user_directory")?;
        let provider = match var_or("IDENTITY_PROVIDER", "authenticator")
            .to_ascii_lowercase()
            .as_str()
        {
            "authenticator" => {
                let client_secret = match secret("DIRECTORY_CLIENT_SECRET")? {
                    Some(s) => s,
                    None if common.is_production() => anyhow::bail!(
                        "DIRECTORY_CLIENT_SECRET (or _FILE) is required in production (APP_ENV=production): the development secret is never used there"
                    ),
                    None => SecretString::from(DEV_CLIENT_SECRET.to_owned()),
                };
                ProviderSettings::Authenticator {
                    authenticator_url: var_or("AUTHENTICATOR_URL", "http://127.0.0.1:5000"),
                    safekeeper_url: var_or("SAFEKEEPER_URL", "http://127.0.0.1:5001"),
                    client_id: var_or("DIRECTORY_CLIENT_ID", "user-directory"),
                    client_secret,
                }
            }
            "workos" => ProviderSettings::WorkOs {
                base_url: var_or("WORKOS_BASE_URL", "https://api.workos.com")
                    .trim_end_matches('/')
                    .to_owned(),
                api_key: secret("WORKOS_API_KEY")?.ok_or_else(|| {
                    anyhow::anyhow!("IDENTITY_PROVIDER=workos needs WORKOS_API_KEY (or _FILE)")
                })?,
                client_id: var_or("WORKOS_CLIENT_ID", ""),
            },
            other => {
                anyhow::bail!("IDENTITY_PROVIDER={other:?} is neither authenticator nor workos")
            }
        };
        let admin_refresh_ttl: u64 = parse_or("ADMIN_REFRESH_TOKEN_TTL_SECONDS", 30 * 24 * 3600)?;
        if admin_refresh_ttl == 0 {
            anyhow::bail!("ADMIN_REFRESH_TOKEN_TTL_SECONDS must be at least 1");
        }
        let default_workers = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2);
        Ok(Self {
            http_workers: parse_or("HTTP_WORKERS", default_workers)?,
            outbox_poll: Duration::from_millis(parse_or("OUTBOX_POLL_MS", 500)?),
            issuer: var_or(
                "DIRECTORY_ISSUER",
                &format!("http://127.0.0.1:{}", common.port),
            ),
            org_token_ttl: Duration::from_secs(parse_or("ORG_TOKEN_TTL_SECONDS", 3600)?),
            admin_refresh_ttl: Duration::from_secs(admin_refresh_ttl),
            signing_key_pem: secret("SIGNING_KEY")?,
            previous_keys_pem: secret("PREVIOUS_SIGNING_KEYS")?,
            require_signing_key: flag("REQUIRE_SIGNING_KEY", common.is_production()),
            directory_config: PathBuf::from(var_or(
                "DIRECTORY_CONFIG",
                "services/user-directory/directory.toml",
            )),
            provider,
            provider_timeout: Duration::from_millis(parse_or("PROVIDER_TIMEOUT_MS", 10_000)?),
            webhook_secret: secret("WORKOS_WEBHOOK_SECRET")?,
            webhook_tolerance: Duration::from_secs(parse_or("WEBHOOK_TOLERANCE_SECONDS", 180)?),
            reconcile_every: Duration::from_millis(parse_or("RECONCILE_INTERVAL_MS", 1000)?),
            saga_lease: Duration::from_secs(parse_or("SAGA_LEASE_SECONDS", 60)?),
            events_poll: Duration::from_millis(parse_or("WORKOS_EVENTS_POLL_MS", 5000)?),
            consumer_group: var_or("CONSUMER_GROUP", "user-directory"),
            trusted_proxies: TrustedProxies::from_env()?,
            org_bootstrap_token: secret("ORG_BOOTSTRAP_TOKEN")?,
            import: ImportLimits {
                max_bytes: parse_or("IMPORT_MAX_BYTES", 10 * 1024 * 1024)?,
                max_rows: parse_or("IMPORT_MAX_ROWS", 50_000)?,
                sync_rows: parse_or("IMPORT_SYNC_ROWS", 200)?,
                concurrency: parse_or("IMPORT_CONCURRENCY", 16)?,
            },
            retention: platform::retention::Settings::from_env()?,
            windows: RetentionWindows {
                provider_events: days_var("PROVIDER_EVENT_RETENTION_DAYS", 7.0)?,
                import_jobs: days_var("IMPORT_JOB_RETENTION_DAYS", 30.0)?,
                saga: days_var("SAGA_RETENTION_DAYS", 30.0)?,
            },
            common,
        })
    }

    pub fn signing_key_pem(&self) -> Option<&str> {
        self.signing_key_pem.as_ref().map(|s| s.expose_secret())
    }
}
