//! Producers and consumers take the Kafka security settings: against a
//! local broker that requires SASL/SCRAM, the platform's own producer and
//! consumer sign in with the configured login, and a wrong password
//! delivers nothing. (Each test runs in its own process under nextest, so
//! each sets the environment the service would have.)

use std::time::Duration;

use platform::events;
use rdkafka::{consumer::Consumer, producer::FutureRecord, Message};
use testkit::OwnedBroker;

const TOPIC: &str = "security.test.v1";

/// A broker with the account `svc` (SCRAM-SHA-512) and a topic, that
/// requires authentication from now on.
fn broker_requiring_scram() -> OwnedBroker {
    let mut b = OwnedBroker::start();
    b.cli(&[
        "user",
        "create",
        "svc",
        "Broker-Passw0rd",
        "--mechanism",
        "scram512",
    ]);
    b.cli(&["topic", "create", TOPIC, "--partitions", "1"]);
    b.restart_with(&["--authentication"]);
    b
}

fn configure(password: &str) {
    std::env::set_var("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT");
    std::env::set_var("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512");
    std::env::set_var("KAFKA_SASL_USERNAME", "svc");
    std::env::set_var("KAFKA_SASL_PASSWORD", password);
    platform::kafka::init_from_env().unwrap();
}

#[tokio::test]
async fn the_platforms_producer_and_consumer_sign_in_with_scram() {
    let b = broker_requiring_scram();
    configure("Broker-Passw0rd");
    let producer = events::producer(&b.brokers()).unwrap();
    let delivered = tokio::time::timeout(
        Duration::from_secs(20),
        producer.send(
            FutureRecord::to(TOPIC).key("k").payload("signed in"),
            Duration::from_secs(10),
        ),
    )
    .await
    .expect("delivered in time");
    assert!(delivered.is_ok(), "{delivered:?}");
    let consumer = events::stream_consumer(&b.brokers(), "security-test").unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
        .await
        .expect("consumed in time")
        .unwrap();
    assert_eq!(msg.payload(), Some(&b"signed in"[..]));
}

#[tokio::test]
async fn a_wrong_broker_password_delivers_nothing() {
    let b = broker_requiring_scram();
    configure("Wrong-Passw0rd");
    let producer = events::producer(&b.brokers()).unwrap();
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        producer.send(
            FutureRecord::to(TOPIC).key("k").payload("forged"),
            Duration::from_secs(1),
        ),
    )
    .await;
    assert!(
        !matches!(outcome, Ok(Ok(_))),
        "a wrong password must not deliver"
    );
}

#[test]
fn a_bad_setting_stops_start_up_with_a_message() {
    std::env::set_var("KAFKA_SECURITY_PROTOCOL", "SASL_SSL");
    std::env::remove_var("KAFKA_SASL_USERNAME");
    let e = platform::kafka::KafkaSecurity::from_env().unwrap_err();
    assert!(format!("{e:#}").contains("KAFKA_SASL_USERNAME"), "{e:#}");
    std::env::set_var("KAFKA_SECURITY_PROTOCOL", "TLS1.3");
    assert!(platform::kafka::KafkaSecurity::from_env().is_err());
}
