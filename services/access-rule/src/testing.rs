//! Starting a real access-rule service inside a test process. Not used in
//! production.

use std::time::Duration;

use actix_web::dev::ServerHandle;
use platform::testkit::TestDatabase;
use secrecy::SecretString;

use crate::{config::Settings, domain::RulesConfig, startup::Application};

/// The operator token test apps accept.
pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789";

pub struct Options {
    pub brokers: String,
    pub database_url: String,
    pub rules: RulesConfig,
    /// Where the authenticator's JWKS is served (`AUTHENTICATOR_URL`).
    pub authenticator_url: String,
    pub operator_usernames: Vec<String>,
    /// How often suspensions are reloaded and the safety-net tripwire
    /// checks run (`RULES_REFRESH_MS`); 500 ms here.
    pub rules_refresh: Duration,
}

impl Options {
    pub fn new(brokers: String, db: &TestDatabase) -> Self {
        Self {
            brokers,
            database_url: db.url.clone(),
            rules: RulesConfig::default(),
            authenticator_url: "http://127.0.0.1:9".into(),
            operator_usernames: vec!["admin".into()],
            rules_refresh: Duration::from_millis(500),
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

/// Starts the service on a free port with its own consumer group (so it
/// reads `iam.user.v1` from the start, whatever other tests consumed).
pub async fn spawn(o: Options) -> Running {
    platform::telemetry::init_for_tests();
    let mut s = Settings::from_env().expect("settings");
    s.common.port = 0;
    s.common.database_url = o.database_url;
    s.common.database_pool_size = 8;
    s.common.kafka_brokers = o.brokers;
    s.rules = o.rules;
    s.operator_token = Some(SecretString::from(OPERATOR_TOKEN.to_owned()));
    s.operator_usernames = o.operator_usernames;
    s.authenticator_url = o.authenticator_url.clone();
    s.auth_issuer = o.authenticator_url;
    s.consumer_group = format!("access-rule-test-{}", uuid::Uuid::new_v4().simple());
    s.http_workers = 2;
    s.outbox_poll = Duration::from_millis(100);
    s.rules_refresh = o.rules_refresh;
    let app = Application::build(s).await.expect("access-rule builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    Running { address, handle }
}
