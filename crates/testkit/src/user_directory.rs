//! Starting a user directory inside a test process, on a listener bound
//! beforehand and from default settings, against a database of its own.

use std::{path::PathBuf, time::Duration};

use crate::{BoundListener, TempDir, TestDatabase};
use actix_web::{dev::ServerHandle, web};
use secrecy::SecretString;

use user_directory::{
    config::{ProviderSettings, Settings},
    startup::Application,
    state::AppState,
};

pub const ISSUER: &str = "http://127.0.0.1:5003";
/// The operators' token the tests create configured organizations with.
pub const BOOTSTRAP_TOKEN: &str = "test-org-bootstrap-token";

/// A database with user-directory's migrations run (a clone of their template).
pub fn database() -> TestDatabase {
    TestDatabase::migrated("user-directory", user_directory::startup::MIGRATIONS)
}

pub struct Options {
    /// Where it listens: bound already, so other services can be told
    /// its address first ([`crate::listener`] by default).
    pub listener: BoundListener,
    pub brokers: String,
    pub database_url: String,
    pub provider: ProviderSettings,
    /// The roles and organizations file.
    pub config_path: PathBuf,
    pub webhook_secret: Option<String>,
    pub saga_lease: Duration,
    pub reconcile_every: Duration,
    pub events_poll: Duration,
    pub import_sync_rows: usize,
    pub import_max_rows: usize,
    pub import_max_bytes: usize,
    pub provider_timeout: Duration,
    /// Time between pruning rounds, the first one included
    /// (`RETENTION_INTERVAL_SECONDS`); `None`: the setting's.
    pub retention_interval: Option<Duration>,
}

impl Options {
    pub fn new(
        brokers: String,
        db: &TestDatabase,
        provider: ProviderSettings,
        config_path: PathBuf,
    ) -> Self {
        Self {
            listener: crate::listener(),
            brokers,
            database_url: db.url.clone(),
            provider,
            config_path,
            webhook_secret: None,
            saga_lease: Duration::from_secs(30),
            reconcile_every: Duration::from_millis(200),
            events_poll: Duration::from_millis(200),
            import_sync_rows: 200,
            import_max_rows: 50_000,
            import_max_bytes: 10 * 1024 * 1024,
            provider_timeout: Duration::from_secs(5),
            retention_interval: None,
        }
    }
}

/// A running user directory.
pub struct Running {
    pub address: String,
    pub state: web::Data<AppState>,
    handle: ServerHandle,
    _state_dir: TempDir,
}

impl Running {
    /// Stops the service as SIGTERM would.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// Starts the directory on its listener with its own consumer group.
pub async fn spawn(o: Options) -> Running {
    platform::telemetry::init_for_tests();
    let dir = TempDir::new("ud-test");
    let mut s = platform::config::with_defaults(Settings::from_env).expect("default settings");
    s.common.listener = Some(o.listener.clone());
    // A second start with the same options binds anew, on a free port.
    s.common.port = 0;
    s.common.database_url = o.database_url;
    s.common.database_pool_size = 12;
    s.common.kafka_brokers = o.brokers;
    s.common.state_dir = dir.0.clone();
    s.issuer = ISSUER.into();
    s.http_workers = 2;
    s.outbox_poll = Duration::from_millis(100);
    s.require_signing_key = false;
    s.signing_key_pem = None;
    s.directory_config = o.config_path;
    s.provider = o.provider;
    s.provider_timeout = o.provider_timeout;
    s.webhook_secret = o.webhook_secret.map(SecretString::from);
    s.saga_lease = o.saga_lease;
    s.reconcile_every = o.reconcile_every;
    s.events_poll = o.events_poll;
    s.consumer_group = format!("ud-test-{}", uuid::Uuid::new_v4().simple());
    s.org_bootstrap_token = Some(SecretString::from(BOOTSTRAP_TOKEN.to_owned()));
    s.import.sync_rows = o.import_sync_rows;
    s.import.max_rows = o.import_max_rows;
    s.import.max_bytes = o.import_max_bytes;
    if let Some(every) = o.retention_interval {
        s.retention.interval = every;
    }
    let app = Application::build(s).await.expect("user-directory builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    Running {
        address,
        state,
        handle,
        _state_dir: dir,
    }
}
