//! What a service asks for on `notification.v1` arrives once, as asked,
//! and only a writer of the topic may ask.

use std::{collections::HashSet, time::Duration};

use platform::events::topics;

use crate::helpers::{envelope, message_id, notification, publish, publish_keyed, start};

#[tokio::test]
async fn a_notification_arrives_once_with_its_recipients_subject_body_and_message_id() {
    let h = start().await;
    let n = notification("payout", &["ann@example.com", "bob@example.com"]);
    publish(&h.brokers, "accounting", &n).await;

    let id = message_id(n.id);
    let mail = h
        .sink
        .wait_for(30, "the payout mail", |m| {
            m.message_id.as_deref() == Some(&id)
        })
        .await;
    assert_eq!(mail.recipients, ["ann@example.com", "bob@example.com"]);
    assert_eq!(mail.from, "notifier@localhost");
    assert_eq!(mail.subject.as_deref(), Some(n.subject.as_str()));
    assert_eq!(
        mail.header("To").as_deref(),
        Some("ann@example.com, bob@example.com")
    );
    // Dots at the start of a line survive the SMTP conversation.
    assert!(
        mail.body()
            .contains("\r\n.A line that begins with a dot.\r\n"),
        "{}",
        mail.data
    );
    let d = h.wait_for_status(n.id, "sent").await;
    assert_eq!(
        (d.attempts, d.kind.as_str(), d.source.as_str()),
        (1, "payout", "accounting")
    );
    assert_eq!(h.sink.with_message_id(&id).len(), 1);
    h.app.stop().await;
}

#[tokio::test]
async fn the_same_notification_published_twice_is_mailed_once() {
    let h = start().await;
    let n = notification("registration", &["root@example.com"]);
    let key = n.id.to_string();
    // The same event twice, then the same notification in a new event.
    let first = envelope("authenticator", &n);
    publish_keyed(&h.brokers, &key, &first).await;
    publish_keyed(&h.brokers, &key, &first).await;
    publish_keyed(&h.brokers, &key, &envelope("authenticator", &n)).await;
    // A later notification on the same key (so the same partition, read
    // after the copies): once it is mailed, the copies were all read.
    let marker = notification("registration", &["root@example.com"]);
    publish_keyed(&h.brokers, &key, &envelope("authenticator", &marker)).await;

    let marker_id = message_id(marker.id);
    h.sink
        .wait_for(30, "the later mail", |m| {
            m.message_id.as_deref() == Some(&marker_id)
        })
        .await;
    h.wait_for_status(n.id, "sent").await;
    assert_eq!(h.sink.with_message_id(&message_id(n.id)).len(), 1);
    assert_eq!(h.delivery(n.id).unwrap().attempts, 1);
    h.app.stop().await;
}

#[tokio::test]
async fn a_notification_from_a_service_that_is_not_a_writer_of_the_topic_is_set_aside_unsent() {
    let h = start().await;
    let forged = notification("payout", &["mallory@example.com"]);
    let key = forged.id.to_string();
    publish_keyed(&h.brokers, &key, &envelope("task", &forged)).await;
    let genuine = notification("payout", &["ann@example.com"]);
    publish_keyed(&h.brokers, &key, &envelope("accounting", &genuine)).await;

    let dead = testkit::collect_events(
        &h.brokers,
        &format!("{}.dlq", topics::NOTIFICATION),
        &HashSet::from([key]),
        1,
        Duration::from_secs(30),
    )
    .await;
    // Every notifier on the broker (other tests' too, each in a group of
    // its own) sets it aside.
    assert!(!dead.is_empty());
    assert!(dead.iter().all(|e| e.source.service == "task"), "{dead:?}");
    // The genuine one behind it on the partition is mailed; the forged one
    // never is, nor recorded.
    let genuine_id = message_id(genuine.id);
    h.sink
        .wait_for(30, "the genuine mail", |m| {
            m.message_id.as_deref() == Some(&genuine_id)
        })
        .await;
    assert!(h.sink.with_message_id(&message_id(forged.id)).is_empty());
    assert!(h.delivery(forged.id).is_none());
    h.app.stop().await;
}

#[tokio::test]
async fn a_notification_to_something_that_is_not_an_address_is_set_aside_unsent() {
    let h = start().await;
    let bad = notification("payout", &["not an address"]);
    publish(&h.brokers, "accounting", &bad).await;
    let dead = testkit::collect_events(
        &h.brokers,
        &format!("{}.dlq", topics::NOTIFICATION),
        &HashSet::from([bad.id.to_string()]),
        1,
        Duration::from_secs(30),
    )
    .await;
    assert!(!dead.is_empty());
    assert!(h.delivery(bad.id).is_none());
    h.app.stop().await;
}
