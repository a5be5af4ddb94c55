//! Every consumed message is handled inside a `consume` span naming its
//! topic, partition, offset and key, so that whatever applying it logs
//! (on the blocking pool too) says which message it was about; and inside
//! the trace its `traceparent` header names, so that what applying it
//! calls and writes goes on in that trace.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use platform::{
    db,
    events::{self, topics, ApplyFn, ConsumerConfig, Envelope, Op, Source},
};
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::FutureRecord,
};
use testkit::{OwnedBroker, TestDatabase};
use tokio::sync::watch;

/// A message's key and the trace id it was applied in.
type Traced = (String, Option<String>);

#[tokio::test]
async fn what_applying_a_message_logs_names_its_topic_partition_offset_and_key() {
    let logs = testkit::CapturedLogs::install("info");

    let broker = OwnedBroker::start();
    let brokers = broker.brokers();
    let database = TestDatabase::create("consume_span");
    let pool = db::build_pool(&database.url, 2, Duration::from_secs(2)).unwrap();
    let (applied, mut seen) = watch::channel(0usize);
    // The trace each message was applied in, as the outbox would see it.
    let traces: Arc<Mutex<Vec<Traced>>> = Arc::default();
    let noted = traces.clone();
    let apply: ApplyFn = Arc::new(move |_conn, _topic, envelope: &Envelope| {
        tracing::info!(account = %envelope.key, "applying the account");
        let trace = platform::telemetry::current().map(|c| c.trace_id);
        noted.lock().unwrap().push((envelope.key.clone(), trace));
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
        let payload = serde_json::to_vec(&envelope).unwrap();
        let mut record = FutureRecord::to(topics::USER).key(key).payload(&payload);
        if key == "account-b" {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: "traceparent",
                value: Some(TRACEPARENT),
            }));
        }
        producer
            .send(record, Duration::from_secs(10))
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
            "consume{{topic=\"{}\" partition=0 offset={offset} key={key} ",
            topics::USER
        );
        assert!(
            text.lines()
                .any(|l| l.contains(&span) && l.contains("applying the account")),
            "no line of applying {key} inside {span}:\n{text}"
        );
    }
    // b's trace goes on in the span and in what applying it writes; a,
    // which named none, starts one of its own.
    let b_line = text
        .lines()
        .find(|l| l.contains("key=account-b") && l.contains("applying the account"))
        .unwrap();
    assert!(b_line.contains(&format!("trace_id={TRACE_ID}")), "{b_line}");
    let traces = traces.lock().unwrap().clone();
    let trace_of = |k: &str| traces.iter().find(|(key, _)| key == k).unwrap().1.clone();
    assert_eq!(trace_of("account-b").as_deref(), Some(TRACE_ID));
    let a = trace_of("account-a").expect("a trace of its own");
    assert!(a.len() == 32 && a != TRACE_ID, "{a}");
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
