//! Starting an access-rule service inside a test process, on a listener bound
//! beforehand and from default settings, against a database of its own.

use std::time::Duration;

use crate::{BoundListener, TestDatabase};
use actix_web::dev::ServerHandle;
use secrecy::SecretString;

use access_rule::{config::Settings, domain::RulesConfig, startup::Application};

/// The operator token test apps accept.
pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789";

/// A database with access-rule's migrations run (a clone of their template).
pub fn database() -> TestDatabase {
    TestDatabase::migrated("access-rule", access_rule::startup::MIGRATIONS)
}

pub struct Options {
    /// Where it listens: bound already, so other services can be told
    /// its address first ([`crate::listener`] by default).
    pub listener: BoundListener,
    pub brokers: String,
    pub database_url: String,
    pub rules: RulesConfig,
    /// Where the authenticator's JWKS is served (`AUTHENTICATOR_URL`).
    pub authenticator_url: String,
    /// `iss` of the authenticator's session tokens (default: its URL).
    pub auth_issuer: Option<String>,
    /// Account ids of operators (`OPERATOR_ACCOUNT_IDS`).
    pub operator_account_ids: Vec<String>,
    /// Where the safekeeper's JWKS is served (`SAFEKEEPER_URL`).
    pub safekeeper_url: String,
    /// `iss` and `aud` of its access tokens.
    pub safekeeper_issuer: String,
    pub access_audience: String,
    /// `PRODUCER_EVENTS_PER_SECOND` and `PRODUCER_BURST`.
    pub producer_rate: f64,
    pub producer_burst: f64,
    pub require_read_token: bool,
    /// How often suspensions are reloaded and the safety-net tripwire
    /// checks run (`RULES_REFRESH_MS`); 500 ms here.
    pub rules_refresh: Duration,
    /// Time between pruning rounds, the first one included
    /// (`RETENTION_INTERVAL_SECONDS`); `None`: the setting's.
    pub retention_interval: Option<Duration>,
    /// `MAX_IN_FLIGHT` and `ADMISSION_WAIT_MS`; `None`: the settings'.
    pub max_in_flight: Option<usize>,
    pub admission_wait: Option<Duration>,
    /// `EVENT_QUEUE_WAIT_MS` (`ZERO`: no bound, the default here: tests
    /// of bursts on a loaded machine's debug build expect every event
    /// applied; `tests/api/overload.rs` sets a bound); `None`: the setting's.
    pub event_queue_wait: Option<Duration>,
    /// `EVENT_BATCH_MAX`; `None`: the setting's.
    pub event_batch_max: Option<usize>,
}

impl Options {
    pub fn new(brokers: String, db: &TestDatabase) -> Self {
        Self {
            listener: crate::listener(),
            brokers,
            database_url: db.url.clone(),
            rules: RulesConfig::default(),
            authenticator_url: "http://127.0.0.1:9".into(),
            auth_issuer: None,
            operator_account_ids: vec![],
            safekeeper_url: "http://127.0.0.1:9".into(),
            safekeeper_issuer: "http://127.0.0.1:5001".into(),
            access_audience: "platform".into(),
            producer_rate: 20_000.0,
            producer_burst: 40_000.0,
            require_read_token: false,
            rules_refresh: Duration::from_millis(500),
            retention_interval: None,
            max_in_flight: None,
            admission_wait: None,
            event_queue_wait: Some(Duration::ZERO),
            event_batch_max: None,
        }
    }
}

/// A running access-rule service.
pub struct Running {
    pub address: String,
    handle: ServerHandle,
}

impl Running {
    /// Stops the service as SIGTERM would (in-flight requests finish).
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// Starts the service on its listener with its own consumer group (so it
/// reads `iam.user.v1` from the start, whatever other tests consumed).
pub async fn spawn(o: Options) -> Running {
    platform::telemetry::init_for_tests();
    let mut s = platform::config::with_defaults(Settings::from_env).expect("default settings");
    s.common.listener = Some(o.listener.clone());
    // A second start with the same options binds anew, on a free port.
    s.common.port = 0;
    s.common.database_url = o.database_url;
    s.common.database_pool_size = 8;
    s.common.kafka_brokers = o.brokers;
    s.rules = o.rules;
    s.operator_token = Some(SecretString::from(OPERATOR_TOKEN.to_owned()));
    s.operator_account_ids = o.operator_account_ids;
    s.auth_issuer = o.auth_issuer.unwrap_or_else(|| o.authenticator_url.clone());
    s.authenticator_url = o.authenticator_url;
    s.safekeeper_url = o.safekeeper_url;
    s.safekeeper_issuer = o.safekeeper_issuer;
    s.access_audience = o.access_audience;
    s.producer_rate = o.producer_rate;
    s.producer_burst = o.producer_burst;
    s.require_read_token = o.require_read_token;
    s.consumer_group = format!("access-rule-test-{}", uuid::Uuid::new_v4().simple());
    s.http_workers = 2;
    s.outbox_poll = Duration::from_millis(100);
    s.rules_refresh = o.rules_refresh;
    if let Some(every) = o.retention_interval {
        s.retention.interval = every;
    }
    if o.max_in_flight.is_some() {
        s.common.max_in_flight = o.max_in_flight;
    }
    if let Some(wait) = o.admission_wait {
        s.common.admission_wait = wait;
    }
    if let Some(wait) = o.event_queue_wait {
        s.batch.max_wait = (!wait.is_zero()).then_some(wait);
    }
    if let Some(max) = o.event_batch_max {
        s.batch.max = max;
    }
    let app = Application::build(s).await.expect("access-rule builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    Running { address, handle }
}
