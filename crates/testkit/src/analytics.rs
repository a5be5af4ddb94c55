//! Starting an analytics service inside a test process, on a listener
//! bound beforehand and from default settings, against a database of its
//! own.

use std::time::Duration;

use crate::{BoundListener, TestDatabase};
use actix_web::dev::ServerHandle;
use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer},
    Offset, TopicPartitionList,
};
use tokio::task::JoinHandle;

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
    s
}

/// A running analytics service.
pub struct Running {
    pub address: String,
    handle: ServerHandle,
    join: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stops the server and its consumer (which commits its offsets).
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = tokio::time::timeout(Duration::from_secs(20), self.join).await;
    }
}

/// Commits the latest offset of every partition of the consumer's topics
/// for its group, so that it starts after what is there now.
async fn skip_to_latest(s: &Settings) {
    let cfg = analytics::startup::consumer_config(s);
    let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
    platform::events::ensure_topics(&cfg.brokers, &topics, cfg.partitions, cfg.replication)
        .await
        .expect("topics created");
    tokio::task::spawn_blocking(move || {
        let timeout = Duration::from_secs(10);
        let consumer: BaseConsumer = platform::events::client_config(&cfg.brokers)
            .set("group.id", &cfg.group_id)
            .set("enable.auto.commit", "false")
            .create()
            .expect("a consumer");
        let mut tpl = TopicPartitionList::new();
        for topic in &cfg.topics {
            let md = consumer
                .fetch_metadata(Some(topic), timeout)
                .expect("the topic's partitions");
            for t in md.topics() {
                for p in t.partitions() {
                    let (_, high) = consumer
                        .fetch_watermarks(topic, p.id(), timeout)
                        .expect("the partition's offsets");
                    tpl.add_partition_offset(topic, p.id(), Offset::Offset(high))
                        .expect("an offset");
                }
            }
        }
        if tpl.count() > 0 {
            consumer
                .commit(&tpl, CommitMode::Sync)
                .expect("offsets committed");
        }
    })
    .await
    .expect("the reset ran");
}

pub async fn spawn(o: Options) -> Running {
    platform::telemetry::init_for_tests();
    let s = settings(&o);
    if o.skip_history {
        skip_to_latest(&s).await;
    }
    let app = Application::build(s).await.expect("analytics builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let join = tokio::spawn(app.run_until_stopped());
    Running {
        address,
        handle,
        join,
    }
}
