//! Starting an analytics service inside a test process, on a listener
//! bound beforehand and from default settings, against a database of its
//! own.

pub use crate::Running;
use crate::{BoundListener, TestDatabase};

use analytics::{config::Settings, startup::Application};

/// A database with analytics' migrations run (a clone of their template).
pub fn database() -> TestDatabase {
    TestDatabase::migrated("analytics", analytics::startup::MIGRATIONS)
}

pub struct Options {
    /// Where it listens: bound already ([`crate::listener`] by default).
    pub listener: BoundListener,
    pub brokers: String,
    pub database_url: String,
    /// A running safekeeper whose tokens carry `iss` `safekeeper::testing::ISSUER`.
    pub safekeeper_url: String,
    pub issuer: String,
    pub audience: String,
    /// A fresh group per app unless a test wants to share one.
    pub consumer_group: String,
    /// Start a new group at the end of the topics rather than replaying
    /// the shared broker's whole history (which other tests keep growing).
    /// Events published after the start still arrive.
    pub skip_history: bool,
    /// The dashboard's OAuth2 client ([`crate::dashboard::config`]);
    /// none by default.
    pub dashboard: Option<dashboard::Config>,
}

impl Options {
    pub fn new(brokers: String, db: &TestDatabase, safekeeper_url: &str) -> Self {
        Self {
            listener: crate::listener(),
            brokers,
            database_url: db.url.clone(),
            safekeeper_url: safekeeper_url.to_owned(),
            issuer: "http://127.0.0.1:5001".into(),
            audience: "platform".into(),
            consumer_group: new_group(),
            skip_history: true,
            dashboard: None,
        }
    }
}

pub fn new_group() -> String {
    format!("analytics-test-{}", uuid::Uuid::new_v4().simple())
}

/// The settings a test app runs with.
pub fn settings(o: &Options) -> Settings {
    let mut s = platform::config::with_defaults(Settings::from_env).expect("default settings");
    s.common.listener = Some(o.listener.clone());
    s.common.port = 0;
    s.common.database_url = o.database_url.clone();
    s.common.database_pool_size = 8;
    s.common.kafka_brokers = o.brokers.clone();
    s.safekeeper_url = o.safekeeper_url.clone();
    s.safekeeper_issuer = o.issuer.clone();
    s.access_audience = o.audience.clone();
    s.consumer_group = o.consumer_group.clone();
    s.http_workers = 2;
    s.dashboard = o.dashboard.clone();
    s
}

pub async fn spawn(o: Options) -> Running {
    platform::telemetry::init_for_tests();
    let s = settings(&o);
    if o.skip_history {
        crate::skip_group_to_latest(&analytics::startup::consumer_config(&s)).await;
    }
    let app = Application::build(s).await.expect("analytics builds");
    Running::start(app.port(), app.handle(), app.run_until_stopped())
}
