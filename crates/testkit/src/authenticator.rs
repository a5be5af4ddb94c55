//! Starting an authenticator inside a test process, on a listener bound
//! beforehand and from default settings, against a database of its own.

use std::time::Duration;

use crate::{BoundListener, TempDir, TestDatabase};
use secrecy::SecretString;

use authenticator::{config::Settings, startup::Application};

pub const ROOT_USER: &str = "root";
pub const ROOT_PASSWORD: &str = "Root-Passw0rd!";

/// A database with authenticator's migrations run (a clone of their template).
pub fn database() -> TestDatabase {
    TestDatabase::migrated("authenticator", authenticator::startup::MIGRATIONS)
}

pub struct Options {
    /// Where it listens: bound already, so other services can be told
    /// its address first ([`crate::listener`] by default).
    pub listener: BoundListener,
    pub brokers: String,
    pub database_url: String,
    pub signing_key: Option<String>,
    pub previous_keys: Option<String>,
    /// Failed logins of one account from one address before back-off.
    pub max_failures: u32,
    /// Where a safekeeper answers, when the test has one.
    pub safekeeper_url: Option<String>,
    /// Count the throttle in this Redis, under this key prefix (replicas
    /// of one test share it).
    pub redis: Option<(String, String)>,
    /// Account creations per address before back-off (high by default:
    /// tests register many accounts from 127.0.0.1).
    pub signups_per_address: u32,
    pub hashing: Option<authenticator::hashing::HashLimits>,
    /// Registration notices to the superusers per hour (high by default,
    /// for the same reason).
    pub registration_notices_per_hour: u32,
}

impl Options {
    pub fn new(brokers: String, db: &TestDatabase) -> Self {
        Self {
            listener: crate::listener(),
            brokers,
            database_url: db.url.clone(),
            signing_key: None,
            previous_keys: None,
            max_failures: 5,
            safekeeper_url: None,
            redis: None,
            signups_per_address: 100_000,
            hashing: None,
            registration_notices_per_hour: 100_000,
        }
    }
}

/// A running authenticator; stops with the test's runtime.
pub struct Running {
    pub address: String,
    _state_dir: TempDir,
}

/// Starts the authenticator on its listener with bcrypt cost 4 and the
/// superuser `root`.
pub async fn spawn(o: Options) -> Running {
    platform::telemetry::init_for_tests();
    let state_dir = TempDir::new("auth-test");
    let mut s = platform::config::with_defaults(Settings::from_env).expect("default settings");
    s.common.listener = Some(o.listener.clone());
    // A second start with the same options binds anew, on a free port.
    s.common.port = 0;
    s.common.database_url = o.database_url;
    s.common.database_pool_size = 4;
    s.common.kafka_brokers = o.brokers;
    s.common.state_dir = state_dir.0.clone();
    s.issuer = "http://127.0.0.1:5000".into();
    s.hashing.cost = 4;
    if let Some(h) = o.hashing {
        s.hashing = h;
    }
    s.http_workers = 2;
    s.outbox_poll = Duration::from_millis(100);
    s.throttle.pair.free = o.max_failures;
    s.throttle.signup.free = o.signups_per_address;
    s.registration_notices_per_hour = o.registration_notices_per_hour;
    s.throttle_store.redis_url = None;
    if let Some((url, prefix)) = o.redis {
        s.throttle_store.redis_url = Some(url);
        s.throttle_store.key_prefix = prefix;
    }
    s.signing_key_pem = o.signing_key.map(SecretString::from);
    s.previous_keys_pem = o.previous_keys.map(SecretString::from);
    s.require_signing_key = false;
    if let Some(url) = o.safekeeper_url {
        s.safekeeper_issuer = "http://127.0.0.1:5001".into();
        s.safekeeper_url = url;
    }
    s.bootstrap_admin = Some(authenticator::config::BootstrapAdmin {
        username: ROOT_USER.into(),
        email: "root@example.com".into(),
        password: SecretString::from(ROOT_PASSWORD.to_owned()),
    });
    let app = Application::build(s).await.expect("authenticator builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    Running {
        address,
        _state_dir: state_dir,
    }
}
