//! Brokers for tests: the shared one, one a test owns (to stop and
//! restart it), and reading events back.

use std::{
    collections::HashSet,
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use platform::events::{client_config, Envelope};
use rdkafka::{consumer::Consumer, Message};

/// The shared broker tests use (`KAFKA_BROKERS`).
pub fn shared_brokers() -> String {
    platform::config::var_or("KAFKA_BROKERS", "127.0.0.1:9092")
}

/// Reads `topic` from the earliest offset until `want` events whose key is
/// in `keys` have arrived (or `timeout` passes), and returns them in the
/// order they were read. Events for other keys (other tests) are ignored.
pub async fn collect_events(
    brokers: &str,
    topic: &str,
    keys: &HashSet<String>,
    want: usize,
    timeout: Duration,
) -> Vec<Envelope> {
    let consumer: rdkafka::consumer::StreamConsumer = client_config(brokers)
        .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, consumer.recv()).await {
            Ok(Ok(m)) => {
                let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
                if key.is_some_and(|k| keys.contains(&k)) {
                    let e: Envelope =
                        serde_json::from_slice(m.payload().unwrap_or_default()).expect("envelope");
                    out.push(e);
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "test consumer error");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => break,
        }
    }
    // Linger briefly so a duplicate right behind the last wanted event shows.
    let linger = Instant::now() + Duration::from_millis(1500);
    while let Ok(Ok(m)) = tokio::time::timeout(
        linger.saturating_duration_since(Instant::now()),
        consumer.recv(),
    )
    .await
    {
        let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
        if key.is_some_and(|k| keys.contains(&k)) {
            if let Ok(e) = serde_json::from_slice(m.payload().unwrap_or_default()) {
                out.push(e);
            }
        }
    }
    out
}

/// A tansu broker owned by one test, on its own port and data folder, so
/// the test can stop and restart it. Needs `tansu` on PATH (or `TANSU_BIN`).
pub struct OwnedBroker {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// More `tansu broker` arguments (`--authentication`, say).
    extra: Vec<String>,
}

impl OwnedBroker {
    pub fn start() -> Self {
        let port = crate::free_port();
        let dir =
            std::env::temp_dir().join(format!("tansu-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("broker dir");
        let mut b = Self {
            port,
            dir,
            child: None,
            extra: Vec::new(),
        };
        b.restart();
        b
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker process again on the same port and data.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let bin = platform::config::var_or("TANSU_BIN", "tansu");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .args(&self.extra)
            .current_dir(&self.dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tansu (install it with `make tools`)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the broker and starts it again on the same data with `extra`
    /// arguments from now on.
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.stop();
        self.extra = extra.iter().map(|a| a.to_string()).collect();
        self.restart();
    }

    /// Runs the `tansu` command line against this broker (`user create
    /// NAME PASSWORD`, say); panics when it fails.
    pub fn cli(&self, args: &[&str]) {
        let bin = platform::config::var_or("TANSU_BIN", "tansu");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let status = Command::new(bin)
            .args(args)
            .args(["--broker", &url])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .status()
            .expect("run tansu");
        assert!(status.success(), "tansu {args:?} failed");
    }

    /// Kills the broker (SIGKILL: an outage, not a polite shutdown).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnedBroker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Moves consumer group `cfg.group_id` to the end of its topics (created if
/// missing): a service started on the shared broker then reads only what is
/// written after this, not the whole history other tests left there.
pub async fn skip_group_to_latest(cfg: &platform::events::ConsumerConfig) {
    use rdkafka::{
        consumer::{BaseConsumer, CommitMode},
        Offset, TopicPartitionList,
    };
    let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
    platform::events::ensure_topics(&cfg.brokers, &topics, cfg.partitions, cfg.replication)
        .await
        .expect("topics created");
    let (brokers, group, topics) = (
        cfg.brokers.clone(),
        cfg.group_id.clone(),
        cfg.topics.clone(),
    );
    tokio::task::spawn_blocking(move || {
        let timeout = Duration::from_secs(10);
        let consumer: BaseConsumer = client_config(&brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("a consumer");
        let mut tpl = TopicPartitionList::new();
        for topic in &topics {
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
