//! Configuration from environment variables (12-factor), with defaults that
//! work on a developer machine. Secrets come from `NAME` or from the file
//! named by `NAME_FILE` and are held in `secrecy` types.

use std::{cell::Cell, path::PathBuf, str::FromStr, time::Duration};

use anyhow::{bail, Context};
use secrecy::SecretString;

thread_local! {
    /// Set while [`with_defaults`] runs: every variable reads as unset.
    static DEFAULTS_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// The variable `name` as set in the environment, or `None` when it is
/// unset (or not Unicode). Every setting is read through here, so that
/// [`with_defaults`] can hide the environment.
pub fn var(name: &str) -> Option<String> {
    if DEFAULTS_ONLY.with(Cell::get) {
        return None;
    }
    std::env::var(name).ok()
}

/// Runs `read` (a `Settings::from_env`, say) as if no variable were set,
/// so that it returns the defaults whatever the shell exported: how tests
/// start a service from known settings.
pub fn with_defaults<T>(read: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            DEFAULTS_ONLY.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(DEFAULTS_ONLY.with(|d| d.replace(true)));
    read()
}

/// Reads `name`, falling back to `default` when it is unset or empty.
pub fn var_or(name: &str, default: &str) -> String {
    match var(name) {
        Some(v) if !v.trim().is_empty() => v,
        _ => default.to_owned(),
    }
}

/// Reads and parses `name`, falling back to `default`; a value that does not
/// parse stops start-up with a message naming the variable.
pub fn parse_or<T>(name: &str, default: T) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match var(name) {
        Some(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("environment variable {name}={v:?} is invalid: {e}")),
        _ => Ok(default),
    }
}

/// `1`, `true`, `yes`, `on` (any case) are true.
pub fn flag(name: &str, default: bool) -> bool {
    match var(name) {
        Some(v) if !v.trim().is_empty() => {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        }
        _ => default,
    }
}

/// A secret from `name`, or from the file that `name_FILE` points to.
pub fn secret(name: &str) -> anyhow::Result<Option<SecretString>> {
    if let Some(v) = var(name) {
        if !v.is_empty() {
            return Ok(Some(SecretString::from(v)));
        }
    }
    let file_var = format!("{name}_FILE");
    if let Some(path) = var(&file_var) {
        if !path.is_empty() {
            let v = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {file_var}={path}"))?;
            return Ok(Some(SecretString::from(
                v.trim_end_matches(['\n', '\r']).to_owned(),
            )));
        }
    }
    Ok(None)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// What every service reads the same way.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub service: &'static str,
    pub environment: Environment,
    pub http_host: String,
    pub port: u16,
    pub database_url: String,
    pub database_pool_size: u32,
    /// Longest a request waits for a pooled connection before it is
    /// answered 503 (`DATABASE_CHECKOUT_WAIT_MS`, default 2000).
    pub database_checkout_wait: Duration,
    pub kafka_brokers: String,
    pub kafka_topic_partitions: i32,
    /// Replication factor of topics a service creates (3 in production).
    pub kafka_topic_replication: i32,
    pub log_format: LogFormat,
    /// Local state (development keys and the like).
    pub state_dir: PathBuf,
    /// Upper bound on a JSON request body.
    pub max_body_bytes: usize,
    /// Longest a JWKS fetched from another service is kept
    /// (`JWKS_CACHE_TTL_SECONDS`); see [`crate::jwt::RemoteJwks`].
    pub jwks_cache_ttl: Duration,
    /// Requests handled at once (`MAX_IN_FLIGHT`; 0: no limit); unset, it
    /// follows the HTTP workers and the pool
    /// ([`crate::admission::default_max_in_flight`]). See
    /// [`crate::admission`].
    pub max_in_flight: Option<usize>,
    /// Longest a request beyond `MAX_IN_FLIGHT` waits for a slot before it
    /// is answered 503 (`ADMISSION_WAIT_MS`, default 5).
    pub admission_wait: Duration,
    /// Open client connections, all workers together
    /// (`HTTP_MAX_CONNECTIONS`, default 10000); beyond it new ones wait in
    /// the listen backlog. Keep it below the process's open-files limit.
    pub http_max_connections: usize,
    /// Connections the kernel holds before the server accepts them
    /// (`HTTP_BACKLOG`, default 1024; the kernel caps it at somaxconn).
    pub http_backlog: u32,
    /// How long a process keeps serving after SIGTERM, not ready, before it
    /// stops accepting (`SHUTDOWN_DRAIN_SECONDS`, default 5; see
    /// [`crate::server::serve`]). Keep it, plus 10 s for the requests in
    /// flight, below the orchestrator's grace period.
    pub shutdown_drain: Duration,
    /// A listener bound before the service starts, taken instead of
    /// binding `http_host:port` (tests, which must know each service's
    /// port before it runs, without a window for another to take it).
    pub listener: Option<crate::server::BoundListener>,
}

/// Reads and parses `name` when it is set and not empty.
pub fn parse_opt<T>(name: &str) -> anyhow::Result<Option<T>>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match var(name) {
        Some(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| anyhow::anyhow!("environment variable {name}={v:?} is invalid: {e}")),
        _ => Ok(None),
    }
}

/// `JWKS_CACHE_TTL_SECONDS` (default 300, at least 1): the longest a remote
/// JWKS is kept, whatever its `Cache-Control` allows. Read by
/// [`crate::jwt::RemoteJwks::new`] too, so that every verifier follows it.
pub fn jwks_cache_ttl() -> anyhow::Result<Duration> {
    let secs: u64 = parse_or(
        "JWKS_CACHE_TTL_SECONDS",
        crate::jwt::DEFAULT_JWKS_MAX_TTL.as_secs(),
    )?;
    if secs == 0 {
        bail!("JWKS_CACHE_TTL_SECONDS must be at least 1");
    }
    Ok(Duration::from_secs(secs))
}

impl CommonConfig {
    /// `database` is the database name used in the default `DATABASE_URL`.
    pub fn from_env(
        service: &'static str,
        default_port: u16,
        database: &str,
    ) -> anyhow::Result<Self> {
        let environment = match var_or("APP_ENV", "development")
            .to_ascii_lowercase()
            .as_str()
        {
            "development" | "dev" | "local" | "test" => Environment::Development,
            "production" | "prod" => Environment::Production,
            other => bail!("APP_ENV={other:?} is neither development nor production"),
        };
        let log_format = match var_or("LOG_FORMAT", "text").to_ascii_lowercase().as_str() {
            "json" => LogFormat::Json,
            "text" | "pretty" => LogFormat::Text,
            other => bail!("LOG_FORMAT={other:?} is neither text nor json"),
        };
        crate::kafka::init_from_env()?;
        let database_url = match secret("DATABASE_URL")? {
            Some(s) => secrecy::ExposeSecret::expose_secret(&s).to_owned(),
            None => format!("postgres://postgres@127.0.0.1:5432/{database}"),
        };
        Ok(Self {
            service,
            environment,
            http_host: var_or("HTTP_HOST", "127.0.0.1"),
            port: parse_or("PORT", default_port)?,
            database_url,
            database_pool_size: parse_or("DATABASE_POOL_SIZE", 16)?,
            database_checkout_wait: Duration::from_millis(parse_or(
                "DATABASE_CHECKOUT_WAIT_MS",
                2000,
            )?),
            kafka_brokers: var_or("KAFKA_BROKERS", "127.0.0.1:9092"),
            kafka_topic_partitions: parse_or("KAFKA_TOPIC_PARTITIONS", 3)?,
            kafka_topic_replication: parse_or("KAFKA_TOPIC_REPLICATION", 1)?,
            log_format,
            state_dir: PathBuf::from(var_or("STATE_DIR", ".state")),
            max_body_bytes: parse_or("MAX_BODY_BYTES", 64 * 1024)?,
            jwks_cache_ttl: jwks_cache_ttl()?,
            max_in_flight: parse_opt("MAX_IN_FLIGHT")?,
            admission_wait: Duration::from_millis(parse_or("ADMISSION_WAIT_MS", 5)?),
            http_max_connections: match parse_or("HTTP_MAX_CONNECTIONS", 10_000)? {
                0 => bail!("HTTP_MAX_CONNECTIONS must be at least 1"),
                n => n,
            },
            http_backlog: match parse_or("HTTP_BACKLOG", 1024)? {
                0 => bail!("HTTP_BACKLOG must be at least 1"),
                n => n,
            },
            shutdown_drain: Duration::from_secs_f64(
                match parse_or("SHUTDOWN_DRAIN_SECONDS", 5.0)? {
                    s if (0.0..=300.0).contains(&s) => s,
                    _ => bail!("SHUTDOWN_DRAIN_SECONDS must be between 0 and 300"),
                },
            ),
            listener: None,
        })
    }

    /// The admission limit of a server with `workers` HTTP workers: the
    /// setting, or the default that follows the workers and the pool.
    pub fn max_in_flight_for(&self, workers: usize) -> usize {
        self.max_in_flight.unwrap_or_else(|| {
            crate::admission::default_max_in_flight(workers, self.database_pool_size)
        })
    }

    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }
}
