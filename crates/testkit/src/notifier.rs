//! Starting a notifier inside a test process, on a listener bound
//! beforehand and from default settings, against a database of its own
//! and an SMTP relay the test names (an [`crate::SmtpSink`], say).

use std::time::Duration;

pub use crate::Running;
use crate::{BoundListener, TestDatabase};

use notifier::{config::Settings, startup::Application};

/// A database with the notifier's migrations run (a clone of their
/// template).
pub fn database() -> TestDatabase {
    TestDatabase::migrated("notifier", notifier::startup::MIGRATIONS)
}

pub struct Options {
    /// Where it listens: bound already ([`crate::listener`] by default).
    pub listener: BoundListener,
    pub brokers: String,
    pub database_url: String,
    /// The relay's port on 127.0.0.1 (plain text, no credentials).
    pub smtp_port: u16,
    /// A fresh group per app unless a test wants to share one.
    pub consumer_group: String,
    /// Start a new group at the end of the topic rather than sending the
    /// shared broker's whole history of notifications (which other tests
    /// keep growing). Notifications published after the start still arrive.
    pub skip_history: bool,
    /// Attempts before a delivery is marked failed.
    pub max_attempts: i32,
}

impl Options {
    pub fn new(brokers: String, db: &TestDatabase, smtp_port: u16) -> Self {
        Self {
            listener: crate::listener(),
            brokers,
            database_url: db.url.clone(),
            smtp_port,
            consumer_group: format!("notifier-test-{}", uuid::Uuid::new_v4().simple()),
            skip_history: true,
            max_attempts: 10,
        }
    }
}

/// The settings a test app runs with: retries after 50 ms, doubling up to
/// 400 ms; the sender looks for due deliveries every 50 ms.
pub fn settings(o: &Options) -> Settings {
    let mut s = platform::config::with_defaults(Settings::from_env).expect("default settings");
    s.common.listener = Some(o.listener.clone());
    // A second start with the same options binds anew, on a free port.
    s.common.port = 0;
    s.common.database_url = o.database_url.clone();
    s.common.database_pool_size = 4;
    s.common.kafka_brokers = o.brokers.clone();
    s.consumer_group = o.consumer_group.clone();
    s.http_workers = 1;
    s.smtp.host = "127.0.0.1".into();
    s.smtp.port = o.smtp_port;
    s.smtp.timeout = Duration::from_secs(5);
    s.retry.base = Duration::from_millis(50);
    s.retry.max = Duration::from_millis(400);
    s.retry.attempts = o.max_attempts;
    s.send_poll = Duration::from_millis(50);
    s
}

pub async fn spawn(o: Options) -> Running {
    platform::telemetry::init_for_tests();
    let s = settings(&o);
    if o.skip_history {
        crate::skip_group_to_latest(&notifier::startup::consumer_config(&s)).await;
    }
    let app = Application::build(s).await.expect("notifier builds");
    Running::start(app.port(), app.handle(), app.run_until_stopped())
}
