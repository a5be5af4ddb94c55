//! `POST /event` needs a producer: a client-credentials access token of
//! the safekeeper with `write:event`, within its rate. The checks are open
//! unless `REQUIRE_READ_TOKEN` asks for `read:restriction`.

use std::time::Duration;

use platform::{
    events::topics,
    jwt::{AccessClaims, KeyRing, SigningKey, ACCESS_TYP},
    revocation::{Kind, Revocation},
};
use rdkafka::producer::FutureRecord;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    assert_problem, client_token, eventually, new_user_id, spawn_app, spawn_app_with, SK_AUDIENCE,
    SK_ISSUER,
};

fn flag(user: &str) -> serde_json::Value {
    json!({"name": "flag_scam_message", "event_properties": {"user_id": user}})
}

#[tokio::test]
async fn posting_an_event_without_a_producer_token_or_with_the_wrong_scope_is_refused() {
    let app = spawn_app().await;
    let u = new_user_id();
    let now = chrono::Utc::now().timestamp();
    let claims = |sub: &str, scope: &str, iss: &str, exp: i64| AccessClaims {
        iss: iss.into(),
        sub: sub.into(),
        aud: SK_AUDIENCE.into(),
        client_id: "some-client".into(),
        scope: scope.into(),
        iat: now,
        exp: now + exp,
        jti: new_user_id(),
        username: None,
        sid: None,
    };
    let foreign = KeyRing::new(SigningKey::generate().unwrap().0, vec![]);
    let unauthenticated = [
        None,
        Some("not-a-token".to_owned()),
        Some(
            foreign
                .sign(
                    ACCESS_TYP,
                    &claims("some-client", "write:event", SK_ISSUER, 300),
                )
                .unwrap(),
        ),
        Some(
            app.keys
                .sign(
                    ACCESS_TYP,
                    &claims("some-client", "write:event", "http://elsewhere", 300),
                )
                .unwrap(),
        ),
        Some(
            app.keys
                .sign(
                    ACCESS_TYP,
                    &claims("some-client", "write:event", SK_ISSUER, -600),
                )
                .unwrap(),
        ),
        Some(
            app.keys
                .sign(
                    "session+jwt",
                    &claims("some-client", "write:event", SK_ISSUER, 300),
                )
                .unwrap(),
        ),
    ];
    for token in &unauthenticated {
        let p = assert_problem(
            app.post_event_as(token.as_deref(), &flag(&u)).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert!(p["detail"].is_string(), "{p}");
    }
    let forbidden = [
        client_token(&app.keys, "reader", "read:restriction"),
        client_token(&app.keys, "reader", "su_read:task write:events"),
        // A person's token (its subject is a user) is no producer.
        app.keys
            .sign(
                ACCESS_TYP,
                &claims(&new_user_id(), "write:event", SK_ISSUER, 300),
            )
            .unwrap(),
    ];
    for token in &forbidden {
        assert_problem(
            app.post_event_as(Some(token), &flag(&u)).await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    // Nothing was applied: the user was never seen.
    assert_eq!(app.count("events"), 0);
    assert_eq!(app.count("users"), 0);
    assert_problem(app.check("canmessage", &u).await, StatusCode::NOT_FOUND).await;

    let other = client_token(&app.keys, "billing", "read:task write:event");
    let r = app.post_event_as(Some(&other), &flag(&u)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(app.can_message(&u).await);
}

#[tokio::test]
async fn a_producer_over_its_rate_gets_429_and_its_events_change_nothing() {
    let app = spawn_app_with(|o| {
        // Three events at once, then one every 1000 s.
        o.producer_rate = 0.001;
        o.producer_burst = 3.0;
    })
    .await;
    let u = new_user_id();
    for _ in 0..2 {
        app.flag(&u).await;
    }
    assert!(!app.can_message(&u).await, "two flags restrict");
    let fresh = new_user_id();
    app.flag(&fresh).await;
    let made_up: Vec<String> = (0..5).map(|_| new_user_id()).collect();
    for id in &made_up {
        let r = app.post_event(&flag(id)).await;
        let retry: u64 = r
            .headers()
            .get("retry-after")
            .expect("Retry-After")
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1, "{retry}");
        let p = assert_problem(r, StatusCode::TOO_MANY_REQUESTS).await;
        assert!(p["detail"].as_str().unwrap().contains("not applied"), "{p}");
    }
    // The refused events changed nothing: no user, no event, no trip.
    for id in &made_up {
        assert_problem(app.check("canmessage", id).await, StatusCode::NOT_FOUND).await;
    }
    assert_eq!(app.count("events"), 3);
    assert_eq!(app.count("users"), 2);
    assert!(app.can_message(&fresh).await);
    // Another producer has its own rate.
    let other = client_token(&app.keys, "other-producer", "write:event");
    let r = app.post_event_as(Some(&other), &flag(&fresh)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!app.can_message(&fresh).await);
}

#[tokio::test]
async fn checks_are_open_by_default_and_can_require_read_restriction() {
    let open = spawn_app().await;
    let u = new_user_id();
    open.flag(&u).await;
    assert!(open.can_message(&u).await, "no token needed by default");

    let app = spawn_app_with(|o| o.require_read_token = true).await;
    app.flag(&u).await;
    let check = |token: Option<String>, route: &'static str| {
        let app = &app;
        let u = u.clone();
        async move {
            let mut req = app.http.get(app.url(route)).query(&[("user_id", u)]);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send().await.unwrap()
        }
    };
    for route in ["/canmessage", "/canpurchase"] {
        assert_problem(check(None, route).await, StatusCode::UNAUTHORIZED).await;
        assert_problem(
            check(Some(app.producer.clone()), route).await,
            StatusCode::FORBIDDEN,
        )
        .await;
        let reader = client_token(&app.keys, "shop", "read:restriction");
        let r = check(Some(reader), route).await;
        assert_eq!(r.status(), StatusCode::OK, "{route}");
    }
}

#[tokio::test]
async fn a_revoked_producer_is_refused_and_its_events_change_nothing() {
    let app = spawn_app().await;
    let client = format!("producer-{}", uuid::Uuid::new_v4().simple());
    let token = client_token(&app.keys, &client, "write:event");
    let u = new_user_id();
    let r = app.post_event_as(Some(&token), &flag(&u)).await;
    assert_eq!(r.status(), StatusCode::OK);

    // The safekeeper revokes the client (as its outbox would publish it).
    let revocation = Revocation::now(Kind::Client, &client, Duration::from_secs(3600));
    let e = revocation.envelope("revocations");
    let producer = platform::events::producer(&app.brokers).unwrap();
    producer
        .send(
            FutureRecord::to(topics::REVOCATION)
                .key(&client)
                .payload(&serde_json::to_vec(&e).unwrap()),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    // Polled with a new user each time: until the revocation arrives the
    // producer is still accepted.
    let refused = eventually(15, "the revoked producer to be refused", || async {
        let other = new_user_id();
        let r = app.post_event_as(Some(&token), &flag(&other)).await;
        (r.status() == StatusCode::UNAUTHORIZED).then_some(other)
    })
    .await;
    assert_problem(
        app.check("canmessage", &refused).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(app.can_message(&u).await, "one flag only");
    // Other producers are not affected.
    assert_eq!(app.post_event(&flag(&u)).await.status(), StatusCode::OK);
}
