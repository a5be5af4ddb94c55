//! A batched consumer applies the messages waiting for it together, in one
//! transaction, and keeps the rules of one message: what is not an event
//! of the topic's writer, or fails to apply, is set aside on its
//! `<topic>.dlq` and everything else in its run is applied, once.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use diesel::{prelude::*, sql_query, sql_types::Text};
use platform::{
    db, dlq,
    events::{self, topics, ApplyFn, Batching, ConsumerConfig, Envelope, Op, Source},
};
use rdkafka::producer::FutureRecord;
use testkit::{OwnedBroker, TestDatabase};
use tokio::sync::watch;

/// The event of account `key`, as the authenticator (`iam.user.v1`'s
/// writer) or `writer` would publish it.
fn event(key: &str, writer: &str) -> Vec<u8> {
    let envelope = Envelope::new(
        Op::Create,
        "account",
        key,
        1,
        Source {
            service: writer.into(),
            table: "accounts".into(),
        },
        None,
        Some(serde_json::json!({"id": key})),
    );
    serde_json::to_vec(&envelope).unwrap()
}

#[derive(QueryableByName)]
struct Key {
    #[diesel(sql_type = Text)]
    key: String,
}

/// `events_refused_total` for `iam.user.v1` in this process.
fn refused_count() -> u64 {
    let topic = format!("kind=\"{}\"", topics::USER);
    platform::metrics::global()
        .render()
        .lines()
        .filter(|l| l.starts_with("events_refused_total{") && l.contains(&topic))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn a_run_is_applied_together_and_its_bad_messages_are_set_aside_one_by_one() {
    let broker = OwnedBroker::start();
    let brokers = broker.brokers();
    let database = TestDatabase::create("batched_consumer");
    let pool = db::build_pool(&database.url, 2, Duration::from_secs(2)).unwrap();
    {
        let mut c = pool.get().unwrap();
        sql_query("CREATE TABLE applied (key TEXT PRIMARY KEY)")
            .execute(&mut c)
            .unwrap();
    }

    // The backlog, written before the consumer starts: 40 accounts, of
    // which one is refused by the database (its apply fails), one is not
    // an envelope and two claim a writer that is not the topic's (one of
    // them, 32, in the run that rolls back).
    let producer = events::producer(&brokers).unwrap();
    events::ensure_topics(&brokers, &[topics::USER], 1, 1)
        .await
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..40 {
        let key = format!("account-{i:02}");
        let payload = match i {
            13 => b"not json at all".to_vec(),
            27 | 32 => event(&key, "task"),
            _ => event(&key, "authenticator"),
        };
        let delivery = producer
            .send_result(FutureRecord::to(topics::USER).key(&key).payload(&payload))
            .map_err(|(e, _)| e)
            .unwrap();
        sent.push(delivery);
    }
    for delivery in sent {
        delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
    }

    // "account-31" is refused; applying any account twice would break the
    // table's key.
    let apply: ApplyFn = Arc::new(|c, _topic, e: &Envelope| {
        anyhow::ensure!(e.key != "account-31", "account-31 is refused");
        sql_query("INSERT INTO applied (key) VALUES ($1)")
            .bind::<Text, _>(&e.key)
            .execute(c)?;
        Ok(())
    });
    let longest = Arc::new(AtomicUsize::new(0));
    let commits = Arc::new(AtomicUsize::new(0));
    let (each, seen, committed) = (
        Batching::each(apply.clone()),
        longest.clone(),
        commits.clone(),
    );
    let batching = Batching {
        apply: Arc::new(move |c, run| {
            seen.fetch_max(run.len(), Ordering::SeqCst);
            each(c, run)
        }),
        committed: Arc::new(move || {
            committed.fetch_add(1, Ordering::SeqCst);
        }),
        // Runs of ten: those holding 13 and 27 commit without them, the one
        // holding 31 rolls back.
        most: 10,
    };
    let (stop, shutdown) = watch::channel(false);
    let consumer = tokio::spawn(events::run_batched_consumer(
        ConsumerConfig {
            brokers: brokers.clone(),
            group_id: "batched".into(),
            topics: vec![topics::USER.into()],
            partitions: 1,
            replication: 1,
        },
        pool.clone(),
        apply,
        batching,
        shutdown,
    ));

    let wanted: Vec<String> = (0..40)
        .filter(|i| ![13, 27, 31, 32].contains(i))
        .map(|i| format!("account-{i:02}"))
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let applied = loop {
        let mut c = pool.get().unwrap();
        let keys: Vec<String> = sql_query("SELECT key FROM applied ORDER BY key")
            .load::<Key>(&mut c)
            .unwrap()
            .into_iter()
            .map(|k| k.key)
            .collect();
        if keys.len() >= wanted.len() || tokio::time::Instant::now() > deadline {
            break keys;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Every good event once, none of the bad ones.
    assert_eq!(applied, wanted);

    // The four bad messages are set aside, each for its own reason.
    let letters = loop {
        let b = brokers.clone();
        let letters = tokio::task::spawn_blocking(move || dlq::list(&b, topics::USER))
            .await
            .unwrap()
            .unwrap();
        if letters.len() >= 4 || tokio::time::Instant::now() > deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut reasons: Vec<(String, String)> = letters
        .iter()
        .map(|l| (l.key.clone().unwrap_or_default(), l.error.clone()))
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert_eq!(reasons[0].0, "account-13");
    assert!(
        reasons[0].1.contains("not an event envelope"),
        "{reasons:?}"
    );
    assert_eq!(reasons[1].0, "account-27");
    assert!(reasons[1].1.contains("is not a writer"), "{reasons:?}");
    assert_eq!(reasons[2].0, "account-31");
    assert!(
        reasons[2].1.contains("account-31 is refused"),
        "{reasons:?}"
    );
    assert_eq!(reasons[3].0, "account-32");
    assert!(reasons[3].1.contains("is not a writer"), "{reasons:?}");
    // Each forged event counted once, though 32's run was handled twice.
    assert_eq!(
        refused_count(),
        2,
        "{}",
        platform::metrics::global().render()
    );

    // The backlog went in runs (the one holding account-31 rolled back and
    // was applied one at a time), and the service heard of the commits.
    assert!(longest.load(Ordering::SeqCst) > 1, "no run of several");
    assert!(commits.load(Ordering::SeqCst) >= 1);

    stop.send(true).unwrap();
    consumer.await.unwrap().unwrap();
}
