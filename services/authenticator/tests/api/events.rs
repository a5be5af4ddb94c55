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

#[derive(diesel::QueryableByName)]
struct Payload {
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    payload: serde_json::Value,
}

/// The `notification.v1` events `app` wrote to its outbox, in order.
fn notifications_written(app: &crate::helpers::TestApp) -> Vec<serde_json::Value> {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::PgConnection::establish(&app.db.url).unwrap();
    diesel::sql_query("SELECT payload FROM outbox WHERE topic = 'notification.v1' ORDER BY id")
        .load::<Payload>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|p| p.payload)
        .collect()
}

#[tokio::test]
async fn a_registration_asks_the_notifier_to_tell_the_superuser() {
    let app = spawn_app_with(Options::default()).await;
    let (body, _) = app.registered_user().await;
    let username = body["username"].as_str().unwrap();

    // Written with the account, in its transaction; the bootstrap
    // superuser's own creation told no one, so it is the only one.
    let written = notifications_written(&app);
    assert_eq!(written.len(), 1, "{written:?}");
    let after = &written[0]["after"];
    assert_eq!(after["kind"], "registration");
    assert_eq!(after["subject"], format!("New account: {username}"));
    assert_eq!(after["to"], json!(["root@example.com"]));
    assert!(after["body"]
        .as_str()
        .unwrap()
        .contains(&format!("Username: {username}")));

    // And the relay publishes it, keyed by the notification's id.
    let key = after["id"].as_str().unwrap().to_owned();
    let events = testkit::collect_events(
        &app.brokers,
        "notification.v1",
        &std::collections::HashSet::from([key.clone()]),
        1,
        std::time::Duration::from_secs(30),
    )
    .await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        (e.entity.as_str(), e.key.as_str()),
        ("notification", key.as_str())
    );
    assert_eq!(e.source.service, "authenticator");
    assert_eq!(e.op, Op::Create);
}

#[tokio::test]
async fn a_batch_of_accounts_is_one_notice_that_lists_them_and_every_superuser_is_told() {
    let app = spawn_app_with(Options::default()).await;
    let root = app.root_token().await;
    let n = uuid::Uuid::new_v4().simple().to_string();
    let names: Vec<String> = (0..3).map(|i| format!("b{i}.{}", &n[..10])).collect();
    let body: Vec<serde_json::Value> = names
        .iter()
        .map(|u| json!({"username": u, "email": format!("{u}@example.com"), "firstname": "Bat", "lastname": "Ch"}))
        .collect();
    let r = app
        .admin(Method::POST, "/v1/users/batch", &root, Some(json!(body)))
        .await;
    assert!(r.status().is_success(), "{}", r.status());

    let written = notifications_written(&app);
    assert_eq!(written.len(), 1, "{written:?}");
    let after = &written[0]["after"];
    assert_eq!(after["subject"], "3 new accounts");
    assert_eq!(after["to"], json!(["root@example.com"]));
    let text = after["body"].as_str().unwrap();
    for u in &names {
        assert!(text.contains(u.as_str()), "{text}");
    }

    // Every active superuser is told: a second one (made in the database,
    // as `create-superuser` would), then a registration.
    let (boss, _) = app.registered_user().await;
    {
        use diesel::{Connection, RunQueryDsl};
        let mut conn = diesel::PgConnection::establish(&app.db.url).unwrap();
        diesel::sql_query("UPDATE accounts SET is_superuser = true WHERE username = $1")
            .bind::<diesel::sql_types::Text, _>(boss["username"].as_str().unwrap())
            .execute(&mut conn)
            .unwrap();
    }
    app.registered_user().await;
    let written = notifications_written(&app);
    assert_eq!(written.len(), 3, "{written:?}");
    assert_eq!(
        written[2]["after"]["to"],
        json!(["root@example.com", boss["email"]])
    );
}

#[tokio::test]
async fn a_flood_of_registrations_mails_the_superusers_a_bounded_number_of_notices_an_hour() {
    let app = spawn_app_with(Options {
        registration_notices_per_hour: Some(2),
        ..Options::default()
    })
    .await;
    // Five sign-ups in one hour (as from many addresses): all created, but
    // the superuser is told of two, then once that notices pause.
    let mut names = Vec::new();
    for _ in 0..5 {
        let (body, _) = app.registered_user().await;
        names.push(body["username"].as_str().unwrap().to_owned());
    }
    assert!(app.account_count().await >= 6);
    let written = notifications_written(&app);
    let subjects: Vec<&str> = written
        .iter()
        .map(|n| n["after"]["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert_eq!(subjects[0], format!("New account: {}", names[0]));
    assert_eq!(subjects[1], format!("New account: {}", names[1]));
    assert!(
        subjects[2].starts_with("Registration notices paused until "),
        "{subjects:?}"
    );
    assert_eq!(written[2]["after"]["to"], json!(["root@example.com"]));
    assert_eq!(written[2]["after"]["kind"], "registration");

    // The next hour (its row moved back an hour, as time would): notices
    // resume.
    {
        use diesel::{Connection, RunQueryDsl};
        let mut conn = diesel::PgConnection::establish(&app.db.url).unwrap();
        diesel::sql_query("UPDATE registration_notice_hours SET hour = hour - interval '1 hour'")
            .execute(&mut conn)
            .unwrap();
    }
    let (body, _) = app.registered_user().await;
    let written = notifications_written(&app);
    assert_eq!(written.len(), 4, "{written:?}");
    assert_eq!(
        written[3]["after"]["subject"],
        format!("New account: {}", body["username"].as_str().unwrap())
    );
    // And it counts the three accounts no notice named (the one whose
    // notice said "paused" and the two after it), once.
    let text = written[3]["after"]["body"].as_str().unwrap();
    assert!(
        text.contains("While registration notices were paused, 3 more accounts were created"),
        "{text}"
    );
    app.registered_user().await;
    let written = notifications_written(&app);
    assert_eq!(written.len(), 5, "{written:?}");
    let text = written[4]["after"]["body"].as_str().unwrap();
    assert!(!text.contains("paused"), "{text}");
}
