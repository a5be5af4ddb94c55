//! How every producer and consumer of the platform reaches the brokers:
//! plain, TLS, SASL or both, from the environment (docs/kafka.md, "Kafka
//! security"). One process speaks to one cluster, so the settings are read
//! once and applied by [`crate::events::client_config`] to every client.

use std::sync::OnceLock;

use anyhow::{bail, Context};
use rdkafka::ClientConfig;
use secrecy::{ExposeSecret, SecretString};

use crate::config::secret;

/// `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s.trim().to_ascii_uppercase().as_str() {
            "" | "PLAINTEXT" => Self::Plaintext,
            "SSL" => Self::Ssl,
            "SASL_PLAINTEXT" => Self::SaslPlaintext,
            "SASL_SSL" => Self::SaslSsl,
            other => bail!(
                "KAFKA_SECURITY_PROTOCOL must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, not {other:?}"
            ),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

/// The SASL login of this service at the brokers.
#[derive(Debug, Clone)]
pub struct Sasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: &'static str,
    pub username: String,
    pub password: SecretString,
}

#[derive(Debug, Clone)]
pub struct KafkaSecurity {
    pub protocol: Protocol,
    pub sasl: Option<Sasl>,
    /// CA bundle (PEM) that signs the brokers' certificates.
    pub ca_location: Option<String>,
    /// This client's certificate and key (PEM), for brokers that ask for one.
    pub certificate_location: Option<String>,
    pub key_location: Option<String>,
    pub key_password: Option<SecretString>,
}

fn path(name: &str) -> Option<String> {
    crate::config::var(name).filter(|v| !v.trim().is_empty())
}

impl KafkaSecurity {
    pub fn plaintext() -> Self {
        Self {
            protocol: Protocol::Plaintext,
            sasl: None,
            ca_location: None,
            certificate_location: None,
            key_location: None,
            key_password: None,
        }
    }

    /// From `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_MECHANISM`,
    /// `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD` (or `_FILE`),
    /// `KAFKA_SSL_CA_LOCATION`, `KAFKA_SSL_CERTIFICATE_LOCATION`,
    /// `KAFKA_SSL_KEY_LOCATION` and `KAFKA_SSL_KEY_PASSWORD` (or `_FILE`).
    pub fn from_env() -> anyhow::Result<Self> {
        let protocol =
            Protocol::parse(&crate::config::var("KAFKA_SECURITY_PROTOCOL").unwrap_or_default())?;
        let sasl = if protocol.sasl() {
            let mechanism = match crate::config::var("KAFKA_SASL_MECHANISM")
                .unwrap_or_else(|| "SCRAM-SHA-512".into())
                .trim()
                .to_ascii_uppercase()
                .as_str()
            {
                "PLAIN" => "PLAIN",
                "SCRAM-SHA-256" => "SCRAM-SHA-256",
                "SCRAM-SHA-512" => "SCRAM-SHA-512",
                other => bail!(
                    "KAFKA_SASL_MECHANISM must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, not {other:?}"
                ),
            };
            if mechanism == "PLAIN" && !protocol.tls() {
                tracing::warn!("SASL PLAIN without TLS sends the broker password in clear text");
            }
            Some(Sasl {
                mechanism,
                username: path("KAFKA_SASL_USERNAME")
                    .context("KAFKA_SASL_USERNAME is required with a SASL protocol")?,
                password: secret("KAFKA_SASL_PASSWORD")?
                    .context("KAFKA_SASL_PASSWORD (or _FILE) is required with a SASL protocol")?,
            })
        } else {
            None
        };
        let security = Self {
            protocol,
            sasl,
            ca_location: path("KAFKA_SSL_CA_LOCATION"),
            certificate_location: path("KAFKA_SSL_CERTIFICATE_LOCATION"),
            key_location: path("KAFKA_SSL_KEY_LOCATION"),
            key_password: secret("KAFKA_SSL_KEY_PASSWORD")?,
        };
        let tls_settings = security.ca_location.is_some()
            || security.certificate_location.is_some()
            || security.key_location.is_some();
        if tls_settings && !protocol.tls() {
            bail!("KAFKA_SSL_* settings need KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL");
        }
        if security.certificate_location.is_some() != security.key_location.is_some() {
            bail!("KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION go together");
        }
        Ok(security)
    }

    /// Sets the librdkafka properties of these settings on `cfg`.
    pub fn apply(&self, cfg: &mut ClientConfig) {
        cfg.set("security.protocol", self.protocol.name());
        if let Some(s) = &self.sasl {
            cfg.set("sasl.mechanism", s.mechanism)
                .set("sasl.username", &s.username)
                .set("sasl.password", s.password.expose_secret());
        }
        if self.protocol.tls() {
            // Verify the broker's name against its certificate.
            cfg.set("ssl.endpoint.identification.algorithm", "https");
        }
        for (key, value) in [
            ("ssl.ca.location", &self.ca_location),
            ("ssl.certificate.location", &self.certificate_location),
            ("ssl.key.location", &self.key_location),
        ] {
            if let Some(v) = value {
                cfg.set(key, v);
            }
        }
        if let Some(p) = &self.key_password {
            cfg.set("ssl.key.password", p.expose_secret());
        }
    }
}

static SECURITY: OnceLock<KafkaSecurity> = OnceLock::new();

/// Reads the settings once (at start, from `CommonConfig::from_env`), so
/// that a bad one stops the service before it serves.
pub fn init_from_env() -> anyhow::Result<()> {
    if SECURITY.get().is_none() {
        let s = KafkaSecurity::from_env()?;
        let _ = SECURITY.set(s);
    }
    Ok(())
}

/// The settings every client uses (plain text when none were read).
pub fn security() -> &'static KafkaSecurity {
    SECURITY.get_or_init(|| {
        KafkaSecurity::from_env().unwrap_or_else(|e| {
            tracing::error!(
                error = format!("{e:#}"),
                "bad Kafka security settings; using none"
            );
            KafkaSecurity::plaintext()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_and_their_needs_are_named() {
        assert_eq!(Protocol::parse("").unwrap(), Protocol::Plaintext);
        assert_eq!(Protocol::parse("sasl_ssl").unwrap(), Protocol::SaslSsl);
        assert!(Protocol::parse("TLS").is_err());
        assert!(Protocol::SaslSsl.sasl() && Protocol::SaslSsl.tls());
        assert!(!Protocol::Ssl.sasl() && Protocol::SaslPlaintext.sasl());
    }

    #[test]
    fn sasl_settings_reach_the_client_config_and_the_password_only_there() {
        let s = KafkaSecurity {
            protocol: Protocol::SaslSsl,
            sasl: Some(Sasl {
                mechanism: "SCRAM-SHA-256",
                username: "task".into(),
                password: SecretString::from("pw".to_owned()),
            }),
            ca_location: Some("/etc/kafka/ca.pem".into()),
            ..KafkaSecurity::plaintext()
        };
        let mut cfg = ClientConfig::new();
        s.apply(&mut cfg);
        assert_eq!(cfg.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(cfg.get("sasl.mechanism"), Some("SCRAM-SHA-256"));
        assert_eq!(cfg.get("sasl.username"), Some("task"));
        assert_eq!(cfg.get("ssl.ca.location"), Some("/etc/kafka/ca.pem"));
        assert!(
            !format!("{s:?}").contains("\"pw\""),
            "the password is not printed"
        );
    }
}
