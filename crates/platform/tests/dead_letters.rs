//! `dlq replay` writes dead letters back to their topic, once each, with
//! their key and bytes as they were.

use std::time::Duration;

use platform::{dlq, events};
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    message::{Header, OwnedHeaders},
    producer::FutureRecord,
    Message,
};
use testkit::OwnedBroker;

#[tokio::test]
async fn dead_letters_are_listed_and_replayed_once_each() {
    let b = OwnedBroker::start();
    let brokers = b.brokers();
    events::ensure_topics(&brokers, &["orders.v1", "orders.v1.dlq"], 1, 1)
        .await
        .unwrap();
    let producer = events::producer(&brokers).unwrap();
    for (key, body) in [("a", "first"), ("b", "second")] {
        let headers = OwnedHeaders::new().insert(Header {
            key: "dlq.error",
            value: Some("not an event envelope"),
        });
        producer
            .send(
                FutureRecord::to("orders.v1.dlq")
                    .key(key)
                    .payload(body)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let (b1, b2) = (brokers.clone(), brokers.clone());
    let listed = tokio::task::spawn_blocking(move || dlq::list(&b1, "orders.v1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].error, "not an event envelope");

    assert_eq!(dlq::replay(&brokers, "orders.v1").await.unwrap(), 2);
    // Once each: a second replay has nothing new.
    assert_eq!(dlq::replay(&b2, "orders.v1").await.unwrap(), 0);

    let consumer: StreamConsumer = events::client_config(&brokers)
        .set("group.id", "replay-check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["orders.v1"]).unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let m = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
            .await
            .expect("replayed records arrive")
            .unwrap();
        got.push((
            String::from_utf8_lossy(m.key().unwrap()).into_owned(),
            String::from_utf8_lossy(m.payload().unwrap()).into_owned(),
        ));
    }
    got.sort();
    assert_eq!(
        got,
        [("a".into(), "first".into()), ("b".into(), "second".into())]
    );
}
