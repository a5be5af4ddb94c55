//! Starting a notifier inside a test process, on a listener bound
//! beforehand and from default settings, against a database of its own
//! and an SMTP relay the test names (an [`crate::SmtpSink`], say).

use std::time::Duration;

use crate::{BoundListener, TestDatabase};
use actix_web::dev::ServerHandle;
use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer},
    Offset, TopicPartitionList,
};
use tokio::task::JoinHandle;

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

/// A running notifier.
pub struct Running {
    pub address: String,
    handle: ServerHandle,
    join: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stops the server, its consumer (which commits its offsets) and its
    /// sender.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = tokio::time::timeout(Duration::from_secs(20), self.join).await;
    }
}

pub async fn spawn(o: Options) -> Running {
    platform::telemetry::init_for_tests();
    let s = settings(&o);
    if o.skip_history {
        let cfg = notifier::startup::consumer_config(&s);
        let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
        platform::events::ensure_topics(&cfg.brokers, &topics, cfg.partitions, cfg.replication)
            .await
            .expect("the notification topic exists");
        tokio::task::spawn_blocking(move || {
            move_group_to_the_end(&cfg.brokers, &cfg.group_id, &cfg.topics)
        })
        .await
        .expect("the reset ran")
        .expect("consumer group moved to the latest offsets");
    }
    let app = Application::build(s).await.expect("notifier builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let join = tokio::spawn(app.run_until_stopped());
    Running {
        address,
        handle,
        join,
    }
}

/// Commits the latest offset of every partition of `topics` for `group`.
fn move_group_to_the_end(brokers: &str, group: &str, topics: &[String]) -> anyhow::Result<()> {
    const TIMEOUT: Duration = Duration::from_secs(10);
    let consumer: BaseConsumer = platform::events::client_config(brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let md = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
        for t in md.topics() {
            for p in t.partitions() {
                let (_, high) = consumer.fetch_watermarks(topic, p.id(), TIMEOUT)?;
                tpl.add_partition_offset(topic, p.id(), Offset::Offset(high))?;
            }
        }
    }
    if tpl.count() > 0 {
        consumer.commit(&tpl, CommitMode::Sync)?;
    }
    Ok(())
}
