//! An event is believed only from its topic's owner: a neighbour service
//! that can write `iam.user.v1` cannot deactivate (or promote) anyone.

use std::time::Duration;

use platform::events::{self, topics, Envelope, Op, Source};
use rdkafka::producer::FutureRecord;
use serde_json::json;
use testkit::authenticator::{ROOT_PASSWORD, ROOT_USER};

use crate::helpers::spawn;

#[tokio::test]
async fn a_user_event_written_by_another_service_is_skipped_and_later_ones_apply() {
    let p = spawn().await;
    let ann = p.person(Some("Employee")).await;
    let before = p.wait_for_user(&ann.id, |u| u["active"] == true).await;
    let version = before["user_version"].as_i64().unwrap();

    // A forged deactivation, far ahead in version, from the directory.
    let forged = Envelope::new(
        Op::Update,
        "user",
        ann.id.clone(),
        version + 100,
        Source {
            service: "user-directory".into(),
            table: "accounts".into(),
        },
        None,
        Some(
            json!({"id": ann.id, "username": ann.username, "is_active": false,
                    "is_superuser": true, "email": "x@example.com"}),
        ),
    );
    let producer = events::producer(&p.brokers).unwrap();
    let payload = serde_json::to_vec(&forged).unwrap();
    producer
        .send(
            FutureRecord::to(topics::USER)
                .key(&ann.id)
                .payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();

    // Then a genuine change of the same account (same key, same partition,
    // so after the forged one).
    let root = p.session(ROOT_USER, ROOT_PASSWORD).await;
    let r = p
        .http
        .patch(format!("{}/v1/users/{}", p.auth, ann.id))
        .bearer_auth(root)
        .json(&json!({"firstname": "Genuine"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let after = p
        .wait_for_user(&ann.id, |u| u["user_version"] == version + 1)
        .await;
    assert_eq!(
        after["active"], true,
        "the forged deactivation was not applied"
    );
}
