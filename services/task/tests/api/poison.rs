//! A poisoned topic no longer stops the consumers: what cannot be applied
//! is set aside on `<topic>.dlq`, and later events still arrive.

use std::time::Duration;

use platform::events::{self, topics, Envelope, Op, Source};
use rdkafka::producer::FutureRecord;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{eventually, spawn, EMPLOYEE_SCOPES};

#[tokio::test]
async fn twelve_poisoned_user_events_are_set_aside_and_a_later_deactivation_still_arrives() {
    let p = spawn().await;
    let ann = p.person(Some("Employee")).await;
    let token = p.token(&ann, EMPLOYEE_SCOPES).await;
    assert_eq!(
        p.post(&token, "/v1/task/own", json!({})).await.status(),
        StatusCode::OK
    );

    // Envelopes that parse but cannot be applied: no state, keys that are
    // not account ids.
    let producer = events::producer(&p.brokers).unwrap();
    let keys: Vec<String> = (0..12)
        .map(|i| format!("poison-{i}-{}", uuid::Uuid::new_v4().simple()))
        .collect();
    for key in &keys {
        let poison = Envelope::new(
            Op::Update,
            "user",
            key.clone(),
            1,
            Source {
                service: "authenticator".into(),
                table: "accounts".into(),
            },
            None,
            Some(json!({})),
        );
        let payload = serde_json::to_vec(&poison).unwrap();
        producer
            .send(
                FutureRecord::to(topics::USER).key(key).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }

    // A deactivation after them still reaches the task service.
    p.deactivate(&ann.id).await;
    eventually(15, "the deactivated employee refused", || async {
        (p.post(&token, "/v1/task/own", json!({})).await.status() != StatusCode::OK).then_some(())
    })
    .await;

    // Every poisoned event is on the dead-letter topic, with its error.
    let b = p.brokers.clone();
    let letters = tokio::task::spawn_blocking(move || platform::dlq::list(&b, topics::USER))
        .await
        .unwrap()
        .unwrap();
    let ours: Vec<_> = letters
        .iter()
        .filter(|l| l.key.as_ref().is_some_and(|k| keys.contains(k)))
        .collect();
    assert!(ours.len() >= 12, "{} of 12 set aside", ours.len());
    assert!(ours.iter().all(|l| !l.error.is_empty()
        && l.origin.starts_with("iam.user.v1/")
        && serde_json::from_slice::<Envelope>(&l.payload).is_ok()));
}
