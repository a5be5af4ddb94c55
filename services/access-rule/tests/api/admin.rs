//! The operator API: reasons, lifting by hand, operators by session token.

use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use platform::jwt::{KeyRing, SessionClaims, SigningKey, ACCESS_TYP, SESSION_TYP};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{assert_problem, new_user_id, rules_in, spawn_app, spawn_app_with};

#[tokio::test]
async fn operators_see_the_reasons_and_lift_a_restriction_until_new_evidence() {
    let app = spawn_app().await;
    let mark = app.mark().await;
    let u = new_user_id();
    app.flag(&u).await;
    app.flag(&u).await;
    app.card(&u, "1", "0001", 5000.0).await;
    app.chargeback(&u, 600.0).await;
    let view = app.user(&u).await;
    assert_eq!(view["can_message"], false);
    assert_eq!(view["can_purchase"], false);
    let reasons: Vec<(String, String)> = view["restrictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap().to_owned(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(reasons[0].0, "scam_flags");
    assert!(reasons[0].1.contains("2 scam flags"), "{}", reasons[0].1);
    assert_eq!(reasons[1].0, "chargeback_ratio");
    assert!(reasons[1].1.contains("600.00") && reasons[1].1.contains("5000.00"));
    assert_eq!(view["cards"][0]["last_four_digits"], "0001");

    let lift_path = format!("/v1/admin/users/{u}/lift");
    let lift = |rule: &str| {
        app.admin(
            Method::POST,
            &lift_path,
            Some(json!({"rule": rule, "note": "false positive, ticket 42"})),
        )
    };
    let r = lift("scam_flags").await;
    assert_eq!(r["lifted"], true);
    assert_eq!(r["user"]["can_message"], true);
    assert!(app.can_message(&u).await);
    assert!(!app.can_purchase(&u).await, "only that rule was lifted");
    assert_eq!(lift("scam_flags").await["lifted"], false, "idempotent");
    let history = &app.user(&u).await["history"];
    assert_eq!(history[0]["action"], "lift");
    assert_eq!(history[0]["actor"], "operator-token");
    assert_eq!(history[0]["reason"], "false positive, ticket 42");

    // New evidence of the rule's kind restricts again.
    let o = app.flag(&u).await;
    assert_eq!(rules_in(&o, "restricted"), ["scam_flags"]);
    assert!(!app.can_message(&u).await);

    let r = app
        .admin_as(
            access_rule::testing::OPERATOR_TOKEN,
            Method::POST,
            &format!("/v1/admin/users/{}/lift", new_user_id()),
            Some(json!({"rule": "scam_flags"})),
        )
        .await;
    assert_problem(r, StatusCode::NOT_FOUND).await;

    let events = app.restriction_events(&mark, &[&u], 4).await;
    let last = events[3].after.as_ref().unwrap();
    assert_eq!(last["changes"][0]["action"], "restrict");
    let lifted = events[2].after.as_ref().unwrap();
    assert_eq!(lifted["changes"][0]["cause"], "operator");
}

/// Serves `ring`'s JWKS as the authenticator would; returns its base URL.
async fn fake_authenticator(ring: Arc<KeyRing>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let ring = ring.clone();
        App::new().route(
            "/.well-known/jwks.json",
            web::get().to(move || {
                let jwks = ring.jwks();
                async move { HttpResponse::Ok().json(jwks) }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn session_tokens_of_listed_operators_are_accepted_and_others_refused() {
    let ring = Arc::new(KeyRing::new(SigningKey::generate().unwrap().0, vec![]));
    let auth = fake_authenticator(ring.clone()).await;
    let app = spawn_app_with(|o| {
        o.authenticator_url = auth.clone();
        o.operator_usernames = vec!["admin".into(), "ops".into()];
    })
    .await;
    let now = chrono::Utc::now().timestamp();
    let token = |username: &str, iss: &str, exp: i64, typ: &str| {
        ring.sign(
            typ,
            &SessionClaims {
                iss: iss.into(),
                sub: new_user_id(),
                username: username.into(),
                iat: now,
                exp: now + exp,
                jti: new_user_id(),
                sep: 0,
            },
        )
        .unwrap()
    };
    let app = &app;
    let get =
        |t: String| async move { app.admin_as(&t, Method::GET, "/v1/admin/rules", None).await };
    assert_eq!(
        get(token("ops", &auth, 300, SESSION_TYP)).await.status(),
        StatusCode::OK
    );
    let r = app
        .admin_as(
            &token("admin", &auth, 300, SESSION_TYP),
            Method::POST,
            "/v1/admin/rules/scam_flags/reset",
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_problem(
        get(token("mallory", &auth, 300, SESSION_TYP)).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    for t in [
        token("admin", "http://elsewhere", 300, SESSION_TYP),
        token("admin", &auth, -600, SESSION_TYP),
        token("admin", &auth, 300, ACCESS_TYP),
    ] {
        assert_problem(get(t).await, StatusCode::UNAUTHORIZED).await;
    }
    let foreign = KeyRing::new(SigningKey::generate().unwrap().0, vec![]);
    let forged = foreign
        .sign(
            SESSION_TYP,
            &SessionClaims {
                iss: auth.clone(),
                sub: new_user_id(),
                username: "admin".into(),
                iat: now,
                exp: now + 300,
                jti: new_user_id(),
                sep: 0,
            },
        )
        .unwrap();
    assert_problem(get(forged).await, StatusCode::UNAUTHORIZED).await;
}
