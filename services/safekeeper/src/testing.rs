//! Starting a real safekeeper inside a test process (this crate's tests and
//! other services' tests that need one). Not used in production.

use std::time::Duration;

use platform::testkit::{TempDir, TestDatabase};

use crate::{config::Settings, startup::Application};

pub const ISSUER: &str = "http://127.0.0.1:5001";
pub const AUDIENCE: &str = "platform";

pub struct Options {
    pub brokers: String,
    pub database_url: String,
    /// A running authenticator (see `authenticator::testing`).
    pub authenticator_url: String,
    pub code_ttl: Duration,
    /// 0 for any free port.
    pub port: u16,
}

impl Options {
    pub fn new(brokers: String, db: &TestDatabase, authenticator_url: &str) -> Self {
        Self {
            brokers,
            database_url: db.url.clone(),
            authenticator_url: authenticator_url.to_owned(),
            code_ttl: Duration::from_secs(60),
            port: 0,
        }
    }
}

pub struct Running {
    pub address: String,
    _state_dir: TempDir,
}

/// Starts the safekeeper on a free port with its own consumer group. Its
/// tokens carry `iss` [`ISSUER`] and `aud` [`AUDIENCE`].
pub async fn spawn(o: Options) -> Running {
    platform::telemetry::init_for_tests();
    let dir = TempDir::new("sk-test");
    let mut s = Settings::from_env().expect("settings");
    // Known before binding: the sign-in form is refused from any origin
    // but the one the test's browser sees.
    let port = match o.port {
        0 => platform::testkit::free_port(),
        p => p,
    };
    s.common.port = port;
    s.origin = format!("http://127.0.0.1:{port}");
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
