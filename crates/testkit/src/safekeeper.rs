//! Starting a safekeeper inside a test process, on a listener bound
//! beforehand and from default settings, against a database of its own.

use std::time::Duration;

use crate::{BoundListener, TempDir, TestDatabase};

use safekeeper::{config::Settings, startup::Application};

pub const ISSUER: &str = "http://127.0.0.1:5001";
pub const AUDIENCE: &str = "platform";

/// A database with safekeeper's migrations run (a clone of their template).
pub fn database() -> TestDatabase {
    TestDatabase::migrated("safekeeper", safekeeper::startup::MIGRATIONS)
}

pub struct Options {
    /// Where it listens: bound already, so other services can be told
    /// its address first ([`crate::listener`] by default).
    pub listener: BoundListener,
    pub brokers: String,
    pub database_url: String,
    /// A running authenticator (see [`crate::authenticator`]).
    pub authenticator_url: String,
    pub code_ttl: Duration,
}

impl Options {
    pub fn new(brokers: String, db: &TestDatabase, authenticator_url: &str) -> Self {
        Self {
            listener: crate::listener(),
            brokers,
            database_url: db.url.clone(),
            authenticator_url: authenticator_url.to_owned(),
            code_ttl: Duration::from_secs(60),
        }
    }
}

pub struct Running {
    pub address: String,
    _state_dir: TempDir,
}

/// Starts the safekeeper on its listener with its own consumer group. Its
/// tokens carry `iss` [`ISSUER`] and `aud` [`AUDIENCE`].
pub async fn spawn(o: Options) -> Running {
    platform::telemetry::init_for_tests();
    let dir = TempDir::new("sk-test");
    let mut s = platform::config::with_defaults(Settings::from_env).expect("default settings");
    // The sign-in form is refused from any origin but the one the test's
    // browser sees.
    s.origin = format!("http://127.0.0.1:{}", o.listener.port());
    s.common.listener = Some(o.listener.clone());
    // A second start with the same options binds anew, on a free port.
    s.common.port = 0;
    s.common.database_url = o.database_url;
    s.common.database_pool_size = 4;
    s.common.kafka_brokers = o.brokers;
    s.common.state_dir = dir.0.clone();
    s.issuer = ISSUER.into();
    s.audience = AUDIENCE.into();
    s.authenticator_url = o.authenticator_url;
    s.authenticator_issuer = "http://127.0.0.1:5000".into();
    s.http_workers = 2;
    s.outbox_poll = Duration::from_millis(100);
    s.code_ttl = o.code_ttl;
    s.consumer_group = format!("sk-test-{}", uuid::Uuid::new_v4().simple());
    s.require_signing_key = false;
    let app = Application::build(s).await.expect("safekeeper builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    Running {
        address,
        _state_dir: dir,
    }
}
