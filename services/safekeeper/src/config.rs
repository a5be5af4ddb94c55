//! The safekeeper's settings. Every variable is listed in docs/configuration.md (the common ones) and the service's README.

use std::time::Duration;

use anyhow::Context;
use platform::{
    address::TrustedProxies,
    config::{parse_or, secret, var_or, CommonConfig},
};
use secrecy::{ExposeSecret, SecretString};

pub const DEFAULT_PORT: u16 = 5001;

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonConfig,
    /// `iss` of access tokens and the base of the metadata URLs.
    pub issuer: String,
    /// The origin (`scheme://host[:port]`) the sign-in page is served from:
    /// the issuer's. A login form posted with any other `Origin` is refused.
    pub origin: String,
    /// Proxies whose `X-Forwarded-For` names the end user (`TRUSTED_PROXIES`).
    pub trusted_proxies: TrustedProxies,
    /// `aud` of access tokens: the resource servers of the platform.
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub code_ttl: Duration,
    /// Where the authenticator answers (login, JWKS).
    pub authenticator_url: String,
    /// `iss` of the authenticator's session tokens.
    pub authenticator_issuer: String,
    pub signing_key_pem: Option<SecretString>,
    pub previous_keys_pem: Option<SecretString>,
    pub require_signing_key: bool,
    pub http_workers: usize,
    pub outbox_poll: Duration,
    /// How long a replica may answer from its client cache.
    pub client_cache_ttl: Duration,
    pub consumer_group: String,
    /// When pruning runs, and how long published outbox rows are kept.
    pub retention: platform::retention::Settings,
    /// How long expired codes and refresh tokens are kept after their
    /// expiry (`EXPIRED_GRANT_RETENTION_HOURS`, default 1, decimals
    /// allowed; 0: deleted at expiry): a spent one replayed within it
    /// still revokes its grant.
    pub expired_grant_retention: Duration,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let common = CommonConfig::from_env("safekeeper", DEFAULT_PORT, "safekeeper")?;
        let default_workers = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2);
        let authenticator_url = var_or("AUTHENTICATOR_URL", "http://127.0.0.1:5000");
        let issuer = var_or(
            "SAFEKEEPER_ISSUER",
            &format!("http://127.0.0.1:{}", common.port),
        );
        let trusted_proxies = TrustedProxies::from_env()?;
        Ok(Self {
            origin: origin_of(&issuer)?,
            issuer,
            trusted_proxies,
            audience: var_or("ACCESS_TOKEN_AUDIENCE", "platform"),
            access_ttl: Duration::from_secs(parse_or("ACCESS_TOKEN_TTL_SECONDS", 300)?),
            refresh_ttl: Duration::from_secs(parse_or(
                "REFRESH_TOKEN_TTL_SECONDS",
                30 * 24 * 3600,
            )?),
            code_ttl: Duration::from_secs(parse_or("AUTHORIZATION_CODE_TTL_SECONDS", 60)?.min(60)),
            authenticator_issuer: var_or("AUTH_ISSUER", &authenticator_url),
            authenticator_url,
            signing_key_pem: secret("SIGNING_KEY")?,
            previous_keys_pem: secret("PREVIOUS_SIGNING_KEYS")?,
            require_signing_key: platform::config::flag(
                "REQUIRE_SIGNING_KEY",
                common.is_production(),
            ),
            http_workers: parse_or("HTTP_WORKERS", default_workers)?,
            outbox_poll: Duration::from_millis(parse_or("OUTBOX_POLL_MS", 500)?),
            client_cache_ttl: Duration::from_millis(parse_or("CLIENT_CACHE_TTL_MS", 60_000)?),
            consumer_group: var_or("CONSUMER_GROUP", "safekeeper"),
            retention: platform::retention::Settings::from_env()?,
            expired_grant_retention: platform::retention::hours_var(
                "EXPIRED_GRANT_RETENTION_HOURS",
                1.0,
            )?
            .unwrap_or(Duration::ZERO),
            common,
        })
    }

    pub fn signing_key_pem(&self) -> Option<&str> {
        self.signing_key_pem.as_ref().map(|s| s.expose_secret())
    }

    /// Cookies get `Secure` when the issuer is served over https.
    pub fn secure_cookies(&self) -> bool {
        self.issuer.starts_with("https://")
    }
}

/// `scheme://host[:port]` of an http(s) URL, as a browser writes it in
/// `Origin` (a default port left out).
pub fn origin_of(url: &str) -> anyhow::Result<String> {
    let origin = reqwest::Url::parse(url)
        .with_context(|| format!("SAFEKEEPER_ISSUER {url:?} is not a URL"))?
        .origin();
    anyhow::ensure!(
        origin.is_tuple(),
        "SAFEKEEPER_ISSUER {url:?} is not an http(s) URL"
    );
    Ok(origin.ascii_serialization())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_origin_is_what_a_browser_sends() {
        assert_eq!(
            super::origin_of("https://sk.example.com:443/base").unwrap(),
            "https://sk.example.com"
        );
        assert_eq!(
            super::origin_of("http://127.0.0.1:5001").unwrap(),
            "http://127.0.0.1:5001"
        );
        assert!(super::origin_of("not a url").is_err());
    }
}
