use platform::events::Op;
use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::OwnedBroker;

use crate::helpers::{spawn_app_with, Options};

#[tokio::test]
async fn every_account_change_appears_on_iam_user_v1_once_and_in_order() {
    let app = spawn_app_with(Options::default()).await;
    let root = app.root_token().await;
    let (_, account) = app.registered_user().await;
    let id = account["id"].as_str().unwrap();
    let path = |p: &str| format!("/v1/users/{id}{p}");
    app.admin(
        Method::PATCH,
        &path(""),
        &root,
        Some(json!({"lastname": "Byron"})),
    )
    .await;
    // A change that changes nothing writes no event.
    app.admin(
        Method::PATCH,
        &path(""),
        &root,
        Some(json!({"lastname": "Byron"})),
    )
    .await;
    app.admin(Method::POST, &path("/deactivate"), &root, None)
        .await;
    app.admin(Method::POST, &path("/activate"), &root, None)
        .await;
    let r = app
        .admin(
            Method::POST,
            &path("/password"),
            &root,
            Some(json!({"password": "Other-Passw0rd!"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let events = app.events_for(&[id], 5).await;
    let seen: Vec<(Op, i64)> = events.iter().map(|e| (e.op, e.version)).collect();
    assert_eq!(
        seen,
        vec![
            (Op::Create, 1),
            (Op::Update, 2),
            (Op::Update, 3),
            (Op::Update, 4),
            (Op::Update, 5)
        ],
        "exactly once each, in order"
    );
    let e = &events[0];
    assert_eq!(e.entity, "user");
    assert_eq!(e.key, id);
    assert_eq!(e.source.service, "authenticator");
    assert!(e.before.is_none());
    assert_eq!(events[1].before.as_ref().unwrap()["lastname"], "Lovelace");
    assert_eq!(events[1].after.as_ref().unwrap()["lastname"], "Byron");
    assert_eq!(events[2].after.as_ref().unwrap()["is_active"], false);
    assert_eq!(events[3].after.as_ref().unwrap()["is_active"], true);
    assert!(
        events[4].after.as_ref().unwrap()["password_changed_at"]
            != events[3].after.as_ref().unwrap()["password_changed_at"]
    );
    for e in &events {
        let text = serde_json::to_string(e).unwrap();
        assert!(
            !text.contains("$2b$") && !text.contains("password_hash") && !text.contains("Passw0rd"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn events_written_while_the_broker_is_down_all_arrive_once_in_order_when_it_returns() {
    let mut broker = OwnedBroker::start();
    let app = spawn_app_with(Options {
        brokers: Some(broker.brokers()),
        ..Options::default()
    })
    .await;
    let root = app.root_token().await;
    let (_, account) = app.registered_user().await;
    let id = account["id"].as_str().unwrap().to_owned();
    // The creation is published while the broker is up.
    assert_eq!(app.events_for(&[&id], 1).await.len(), 1);

    broker.stop();
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(
        ready.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "readiness reports the broker outage"
    );
    // Changes are still accepted, durably, while the broker is away.
    let (_, second) = app.registered_user().await;
    let second_id = second["id"].as_str().unwrap().to_owned();
    for name in ["One", "Two", "Three"] {
        let r = app
            .admin(
                Method::PATCH,
                &format!("/v1/users/{id}"),
                &root,
                Some(json!({"firstname": name})),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    broker.restart();

    let events = app.events_for(&[&id, &second_id], 5).await;
    let mine: Vec<(i64, String)> = events
        .iter()
        .filter(|e| e.key == id)
        .map(|e| {
            (
                e.version,
                e.after.as_ref().unwrap()["firstname"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        mine,
        vec![
            (1, "Ada".into()),
            (2, "One".into()),
            (3, "Two".into()),
            (4, "Three".into())
        ],
        "every event, none twice, in order"
    );
    assert_eq!(events.iter().filter(|e| e.key == second_id).count(), 1);
}

#[tokio::test]
async fn an_event_carries_the_id_of_the_request_that_made_it() {
    use rdkafka::{
        consumer::{Consumer, StreamConsumer},
        message::Headers,
        Message,
    };
    let app = spawn_app_with(Options::default()).await;
    let root = app.root_token().await;
    let (_, account) = app.registered_user().await;
    let id = account["id"].as_str().unwrap().to_owned();
    let r = app
        .http
        .patch(app.url(&format!("/v1/users/{id}")))
        .bearer_auth(&root)
        .header("X-Request-Id", "support-ticket-4711")
        .json(&json!({"lastname": "King-Noel"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Read the account's events with their headers: the change made under
    // that request carries its id, the registration its own.
    let consumer: StreamConsumer = platform::events::client_config(&app.brokers)
        .set("group.id", format!("request-id-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["iam.user.v1"]).unwrap();
    let mut ids = Vec::new();
    while ids.len() < 2 {
        let m = tokio::time::timeout(std::time::Duration::from_secs(30), consumer.recv())
            .await
            .expect("the account's two events arrive")
            .unwrap();
        if m.key() != Some(id.as_bytes()) {
            continue;
        }
        let request_id = m.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == "x-request-id")
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        });
        ids.push(request_id);
    }
    assert!(ids[0]
        .as_deref()
        .is_some_and(|r| !r.is_empty() && r != "support-ticket-4711"));
    assert_eq!(ids[1].as_deref(), Some("support-ticket-4711"));
}
