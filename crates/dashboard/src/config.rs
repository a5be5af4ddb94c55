//! A dashboard's settings, read from the environment (see the accounting
//! and analytics READMEs for the variables).

use std::time::Duration;

use platform::config::{flag, parse_or, secret, var, var_or};
use secrecy::SecretString;

/// Where the landing page's links go.
#[derive(Debug, Clone)]
pub struct Links {
    /// The task tracker's API documentation (`TASK_DOCS_URL`).
    pub task_docs: String,
    /// The accounting dashboard (`ACCOUNTING_DASHBOARD_URL`).
    pub accounting: String,
    /// The analytics dashboard (`ANALYTICS_DASHBOARD_URL`).
    pub analytics: String,
}

impl Links {
    /// From `TASK_DOCS_URL`, `ACCOUNTING_DASHBOARD_URL` and
    /// `ANALYTICS_DASHBOARD_URL`, by default the local ports of `make up`.
    pub fn from_env() -> Self {
        Self {
            task_docs: var_or("TASK_DOCS_URL", "http://127.0.0.1:5002/openapi.json"),
            accounting: var_or(
                "ACCOUNTING_DASHBOARD_URL",
                "http://127.0.0.1:5006/dashboard",
            ),
            analytics: var_or("ANALYTICS_DASHBOARD_URL", "http://127.0.0.1:5007/dashboard"),
        }
    }
}

/// An OAuth2 client of the safekeeper, as a dashboard is registered there.
#[derive(Debug, Clone)]
pub struct Config {
    /// Names the cookies (`accounting`, `analytics`): two dashboards on
    /// one host (ports do not separate cookies) keep apart.
    pub service: &'static str,
    /// `DASHBOARD_CLIENT_ID`.
    pub client_id: String,
    /// `DASHBOARD_CLIENT_SECRET` or `DASHBOARD_CLIENT_SECRET_FILE`.
    pub client_secret: SecretString,
    /// The safekeeper as the browser reaches it (`SAFEKEEPER_PUBLIC_URL`,
    /// default `SAFEKEEPER_URL`): where `/oauth2/authorize` is.
    pub safekeeper_public_url: String,
    /// The safekeeper as this service reaches it (`SAFEKEEPER_URL`): where
    /// `/oauth2/token` and `/oauth2/revoke` are.
    pub safekeeper_url: String,
    /// This service as the browser reaches it (`DASHBOARD_PUBLIC_URL`);
    /// the redirect URI is its `/dashboard/callback`.
    pub public_url: String,
    /// The scopes asked for (space-separated).
    pub scope: String,
    /// Cookies marked `Secure` and named `__Host-…`
    /// (`DASHBOARD_COOKIE_SECURE`, default true; false only for local
    /// http).
    pub cookie_secure: bool,
    /// How long a session lasts at most (`DASHBOARD_SESSION_MINUTES`,
    /// default 480), whatever its tokens say.
    pub session_ttl: Duration,
    pub links: Links,
}

impl Config {
    /// The dashboard of `service`, or `None` when `DASHBOARD_CLIENT_ID` is
    /// not set (the pages then say that sign-in is not configured).
    pub fn from_env(
        service: &'static str,
        safekeeper_url: &str,
        default_public_url: &str,
        scope: &str,
    ) -> anyhow::Result<Option<Self>> {
        let Some(client_id) = var("DASHBOARD_CLIENT_ID").filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        let client_secret = secret("DASHBOARD_CLIENT_SECRET")?.ok_or_else(|| {
            anyhow::anyhow!(
                "DASHBOARD_CLIENT_ID is set: set DASHBOARD_CLIENT_SECRET or DASHBOARD_CLIENT_SECRET_FILE too"
            )
        })?;
        Ok(Some(Self {
            service,
            client_id,
            client_secret,
            safekeeper_public_url: var_or("SAFEKEEPER_PUBLIC_URL", safekeeper_url)
                .trim_end_matches('/')
                .to_owned(),
            safekeeper_url: safekeeper_url.trim_end_matches('/').to_owned(),
            public_url: var_or("DASHBOARD_PUBLIC_URL", default_public_url)
                .trim_end_matches('/')
                .to_owned(),
            scope: scope.to_owned(),
            cookie_secure: flag("DASHBOARD_COOKIE_SECURE", true),
            session_ttl: Duration::from_secs(60 * parse_or("DASHBOARD_SESSION_MINUTES", 480u64)?),
            links: Links::from_env(),
        }))
    }

    /// `{public_url}/dashboard/callback`, registered at the safekeeper.
    pub fn redirect_uri(&self) -> String {
        format!("{}/dashboard/callback", self.public_url)
    }

    /// The session cookie's name: `__Host-` prefixed when `Secure`.
    pub fn session_cookie(&self) -> String {
        self.cookie_name("dashboard")
    }

    /// The cookie that ties a sign-in's `state` to the browser that began it.
    pub fn login_cookie(&self) -> String {
        self.cookie_name("dashboard-login")
    }

    fn cookie_name(&self, what: &str) -> String {
        if self.cookie_secure {
            format!("__Host-{}-{what}", self.service)
        } else {
            format!("{}-{what}", self.service)
        }
    }
}
