//! Every consumed message is handled inside a `consume` span naming its
//! topic, partition, offset and key, so that whatever applying it logs
//! (on the blocking pool too) says which message it was about.

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use platform::{
    db,
    events::{self, topics, ApplyFn, ConsumerConfig, Envelope, Op, Source},
};
use rdkafka::producer::FutureRecord;
use testkit::{OwnedBroker, TestDatabase};
use tokio::sync::watch;

/// Log lines, written where the test can read them.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn what_applying_a_message_logs_names_its_topic_partition_offset_and_key() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .unwrap();

    let broker = OwnedBroker::start();
    let brokers = broker.brokers();
    let database = TestDatabase::create("consume_span");
    let pool = db::build_pool(&database.url, 2, Duration::from_secs(2)).unwrap();
    let (applied, mut seen) = watch::channel(0usize);
    let apply: ApplyFn = Arc::new(move |_conn, _topic, envelope: &Envelope| {
        tracing::info!(account = %envelope.key, "applying the account");
        applied.send_modify(|n| *n += 1);
        Ok(())
    });
    let (stop, shutdown) = watch::channel(false);
    let consumer = tokio::spawn(events::run_consumer(
        ConsumerConfig {
            brokers: brokers.clone(),
            group_id: "consume-span".into(),
            topics: vec![topics::USER.into()],
            partitions: 1,
            replication: 1,
        },
        pool,
        apply,
        shutdown,
    ));

    let producer = events::producer(&brokers).unwrap();
    for key in ["account-a", "account-b"] {
        let envelope = Envelope::new(
            Op::Create,
            "account",
            key,
            1,
            Source {
                service: "authenticator".into(),
                table: "accounts".into(),
            },
            None,
            Some(serde_json::json!({"id": key})),
        );
        producer
            .send(
                FutureRecord::to(topics::USER)
                    .key(key)
                    .payload(&serde_json::to_vec(&envelope).unwrap()),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), seen.wait_for(|n| *n == 2))
        .await
        .expect("both messages applied")
        .unwrap();
    stop.send(true).unwrap();
    consumer.await.unwrap().unwrap();

    let text = logs.text();
    for (offset, key) in [(0, "account-a"), (1, "account-b")] {
        let span = format!(
            "consume{{topic=\"{}\" partition=0 offset={offset} key={key}}}",
            topics::USER
        );
        assert!(
            text.lines()
                .any(|l| l.contains(&span) && l.contains("applying the account")),
            "no line of applying {key} inside {span}:\n{text}"
        );
    }
}
