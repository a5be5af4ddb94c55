//! The notifier's settings: the common ones plus its own (its README lists
//! them with their defaults).

use std::time::Duration;

use anyhow::bail;
use platform::config::{parse_or, secret, var_or, CommonConfig};
use secrecy::SecretString;

/// The platform's documents name no port for the notifier; 5008 is its
/// own (`PORT`).
pub const DEFAULT_PORT: u16 = 5008;

/// How the connection to the relay is protected (`SMTP_STARTTLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTls {
    /// Plain text: a relay on the same host or the development sink.
    Off,
    /// STARTTLS when the relay offers it, plain text otherwise.
    Opportunistic,
    /// STARTTLS or no mail: what production uses.
    Required,
}

impl std::str::FromStr for StartTls {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "false" | "no" | "0" => Ok(Self::Off),
            "opportunistic" => Ok(Self::Opportunistic),
            "required" | "on" | "true" | "yes" | "1" => Ok(Self::Required),
            other => Err(format!("{other:?} is none of off, opportunistic, required")),
        }
    }
}

/// Where and how mail is sent.
#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub starttls: StartTls,
    /// Both or neither: the relay's account, when it asks for one.
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// The sender's address (`From`); its domain also ends each
    /// `Message-ID`.
    pub from: String,
    /// Longest one conversation with the relay may take.
    pub timeout: Duration,
    /// The name the notifier gives in `EHLO` (`SMTP_HELO_NAME`; unset:
    /// lettre's `[127.0.0.1]`).
    pub helo_name: Option<String>,
}

/// When a failed attempt is tried again, and when the notifier gives up.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// The wait after the first failed attempt; each further one doubles it.
    pub base: Duration,
    /// The longest wait between two attempts.
    pub max: Duration,
    /// Attempts before a delivery is marked failed.
    pub attempts: i32,
}

impl Retry {
    /// The wait after the `attempts`-th failed attempt.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(0)
            .min(30);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonConfig,
    pub http_workers: usize,
    /// Consumer group of `notification.v1`.
    pub consumer_group: String,
    pub smtp: Smtp,
    pub retry: Retry,
    /// How often the sender looks for due deliveries when nothing woke it.
    pub send_poll: Duration,
    /// How long sent deliveries are kept (`SENT_RETENTION_DAYS`; `None`:
    /// for ever). Failed ones are kept for an operator to look at.
    pub sent_retention: Option<Duration>,
    pub retention: platform::retention::Settings,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let common = CommonConfig::from_env("notifier", DEFAULT_PORT, "notifier")?;
        let production = common.is_production();
        let username = platform::config::parse_opt::<String>("SMTP_USERNAME")?;
        let password = secret("SMTP_PASSWORD")?;
        if username.is_some() != password.is_some() {
            bail!("SMTP_USERNAME and SMTP_PASSWORD (or SMTP_PASSWORD_FILE) go together");
        }
        let default_tls = if production { "required" } else { "off" };
        let starttls: StartTls = parse_or("SMTP_STARTTLS", default_tls.parse().expect("known"))?;
        if production && username.is_some() && starttls == StartTls::Off {
            bail!("SMTP_STARTTLS=off would send SMTP_PASSWORD in clear text; use required");
        }
        let attempts: i32 = parse_or("SEND_MAX_ATTEMPTS", 10)?;
        if attempts < 1 {
            bail!("SEND_MAX_ATTEMPTS must be at least 1");
        }
        let timeout = Duration::from_secs(parse_or("SMTP_TIMEOUT_SECONDS", 30)?);
        if timeout.is_zero() {
            bail!("SMTP_TIMEOUT_SECONDS must be at least 1");
        }
        let default_workers = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2)
            .min(2);
        Ok(Self {
            http_workers: parse_or("HTTP_WORKERS", default_workers)?,
            consumer_group: var_or("CONSUMER_GROUP", "notifier"),
            smtp: Smtp {
                host: var_or("SMTP_HOST", "127.0.0.1"),
                port: parse_or("SMTP_PORT", 2525)?,
                starttls,
                username,
                password,
                from: var_or("MAIL_FROM", "notifier@localhost"),
                timeout,
                helo_name: platform::config::parse_opt("SMTP_HELO_NAME")?,
            },
            retry: Retry {
                base: Duration::from_millis(parse_or("SEND_RETRY_BASE_MS", 1000)?),
                max: Duration::from_secs(parse_or("SEND_RETRY_MAX_SECONDS", 3600)?),
                attempts,
            },
            send_poll: Duration::from_millis(parse_or("SEND_POLL_MS", 1000)?),
            sent_retention: platform::retention::days_var("SENT_RETENTION_DAYS", 30.0)?,
            retention: platform::retention::Settings::from_env()?,
            common,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_after_each_failure_up_to_its_cap() {
        let r = Retry {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            attempts: 10,
        };
        let waits: Vec<u64> = (1..=8).map(|a| r.backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(r.backoff(1000), Duration::from_secs(60));
    }

    #[test]
    fn starttls_reads_its_three_modes() {
        assert_eq!("off".parse(), Ok(StartTls::Off));
        assert_eq!("Required".parse(), Ok(StartTls::Required));
        assert_eq!("opportunistic".parse(), Ok(StartTls::Opportunistic));
        assert!("maybe".parse::<StartTls>().is_err());
    }
}
