//! With the real authenticator and safekeeper: a producer obtains
//! `write:event` by client credentials and posts; a registered `admin` or
//! `admin2` is no operator, the superuser is.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::{
    authenticator::{ROOT_PASSWORD, ROOT_USER},
    PASSWORD,
};

use crate::helpers::{assert_problem, eventually, new_user_id, spawn_app_with};

#[tokio::test]
async fn a_producer_posts_with_a_client_credentials_token_and_only_superusers_are_operators() {
    let p = testkit::TestPlatform::builder().build().await;
    let app = spawn_app_with(|o| {
        o.authenticator_url = p.auth.clone();
        o.auth_issuer = Some("http://127.0.0.1:5000".into());
        o.safekeeper_url = p.sk.clone();
        o.safekeeper_issuer = testkit::safekeeper::ISSUER.into();
        o.access_audience = testkit::safekeeper::AUDIENCE.into();
    })
    .await;

    // The superuser creates a producer client with `write:event`.
    p.create_client(json!({"client_id": "events-producer", "name": "Events",
                           "client_secret": "events-producer-secret-0123",
                           "grant_types": ["client_credentials"], "scopes": ["write:event"]}))
        .await;
    let token = p
        .client_token(
            "events-producer",
            "events-producer-secret-0123",
            "write:event",
        )
        .await;
    let admin = p.admin.clone();
    let u = new_user_id();
    let event = json!({"name": "flag_scam_message", "event_properties": {"user_id": u}});
    let r = app.post_event_as(Some(&token), &event).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The superuser's own access token is no producer's.
    assert_problem(
        app.post_event_as(Some(&admin), &event).await,
        StatusCode::FORBIDDEN,
    )
    .await;

    // Anyone may register `admin` or `admin2`: neither is an operator.
    for name in ["admin", "admin2"] {
        let r = p
            .http
            .post(format!("{}/v1/user", p.auth))
            .json(&json!({"username": name, "password": PASSWORD,
                          "email": format!("{name}@example.com"),
                          "firstname": "Mallory", "lastname": "Example"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{name}");
        let session = p.session(name, PASSWORD).await;
        for (method, path) in [
            (Method::GET, "/v1/admin/rules".to_owned()),
            (Method::GET, format!("/v1/admin/users/{u}")),
            (Method::POST, "/v1/admin/rules/scam_flags/reset".to_owned()),
        ] {
            let r = app.admin_as(&session, method, &path, None).await;
            assert_problem(r, StatusCode::FORBIDDEN).await;
        }
    }
    // The superuser is, once iam.user.v1 told access-rule.
    let root = p.session(ROOT_USER, ROOT_PASSWORD).await;
    let view = eventually(60, "the superuser to be an operator", || async {
        let r = app
            .admin_as(&root, Method::GET, &format!("/v1/admin/users/{u}"), None)
            .await;
        (r.status() == StatusCode::OK).then_some(())?;
        r.json::<Value>().await.ok()
    })
    .await;
    assert_eq!(view["facts"]["scam_flags"], 1, "{view}");
}
