//! A relay that refuses for a while gets the mail later; one that never
//! takes it leaves the notification marked failed, with its cause.

use testkit::OwnedBroker;

use crate::helpers::{message_id, notification, publish, start_with};

/// A broker of its own: no other test's notification takes one of the
/// refusals meant for this one.
#[tokio::test]
async fn a_relay_that_refuses_the_first_attempts_gets_the_mail_after_retries() {
    let broker = OwnedBroker::start();
    let h = start_with(broker.brokers(), |_| {}).await;
    h.sink.refuse_next(3);
    let n = notification("payout", &["ann@example.com"]);
    publish(&h.brokers, "accounting", &n).await;

    let id = message_id(n.id);
    h.sink
        .wait_for(30, "the mail after retries", |m| {
            m.message_id.as_deref() == Some(&id)
        })
        .await;
    assert_eq!(h.sink.refused(), 3);
    let d = h.wait_for_status(n.id, "sent").await;
    assert_eq!(d.attempts, 4);
    assert_eq!(d.last_error, None);
    assert_eq!(h.sink.with_message_id(&id).len(), 1);
    h.app.stop().await;
}

#[tokio::test]
async fn a_relay_that_always_refuses_leaves_the_notification_failed_with_its_cause() {
    let broker = OwnedBroker::start();
    let h = start_with(broker.brokers(), |o| o.max_attempts = 3).await;
    h.sink.refuse_next(usize::MAX);
    let n = notification("payout", &["ann@example.com"]);
    publish(&h.brokers, "accounting", &n).await;

    let d = h.wait_for_status(n.id, "failed").await;
    assert_eq!(d.attempts, 3);
    let cause = d.last_error.unwrap_or_default();
    assert!(cause.contains("451"), "{cause}");
    assert!(d.failed_at.is_some());
    assert!(h.sink.messages().is_empty());
    let metrics = testkit::text_of(&format!("{}/metrics", h.app.address)).await;
    assert!(
        metrics.contains(r#"notifications_failed_total{service="notifier",kind="payout"} 1"#),
        "{metrics}"
    );
    h.app.stop().await;
}
