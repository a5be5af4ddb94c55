//! With the real authenticator and safekeeper: a producer obtains
//! `write:event` by client credentials and posts; a registered `admin` or
//! `admin2` is no operator, the superuser is.

use authenticator::testing::{ROOT_PASSWORD, ROOT_USER};
use platform::testkit::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, eventually, new_user_id, spawn_app_with};

const PASSWORD: &str = "Sturdy-Passw0rd!";

async fn login(http: &reqwest::Client, auth: &str, username: &str, password: &str) -> String {
    let r = http
        .post(format!("{auth}/v1/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "login of {username}");
    r.json::<Value>().await.unwrap()["session_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_producer_posts_with_a_client_credentials_token_and_only_superusers_are_operators() {
    let brokers = platform::testkit::shared_brokers();
    let (auth_db, sk_db) = (
        TestDatabase::create("authenticator"),
        TestDatabase::create("safekeeper"),
    );
    let auth = authenticator::testing::spawn(authenticator::testing::Options::new(
        brokers.clone(),
        &auth_db,
    ))
    .await;
    let sk = safekeeper::testing::spawn(safekeeper::testing::Options::new(
        brokers.clone(),
        &sk_db,
        &auth.address,
    ))
    .await;
    let app = spawn_app_with(|o| {
        o.authenticator_url = auth.address.clone();
        o.auth_issuer = Some("http://127.0.0.1:5000".into());
        o.safekeeper_url = sk.address.clone();
        o.safekeeper_issuer = safekeeper::testing::ISSUER.into();
        o.access_audience = safekeeper::testing::AUDIENCE.into();
    })
    .await;
    let http = reqwest::Client::new();

    // The superuser creates a producer client with `write:event`.
    let root = login(&http, &auth.address, ROOT_USER, ROOT_PASSWORD).await;
    let admin = eventually(60, "the superuser's admin:client", || async {
        let r = http
            .post(format!("{}/v1/authorize", sk.address))
            .bearer_auth(&root)
            .json(&json!({"scopes": "admin:client"}))
            .send()
            .await
            .unwrap();
        if r.status() != StatusCode::OK {
            return None;
        }
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    let r = http
        .post(format!("{}/v1/admin/clients", sk.address))
        .bearer_auth(&admin)
        .json(&json!({"client_id": "events-producer", "name": "Events",
                      "client_secret": "events-producer-secret-0123",
                      "grant_types": ["client_credentials"], "scopes": ["write:event"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let r = http
        .post(format!("{}/oauth2/token", sk.address))
        .basic_auth("events-producer", Some("events-producer-secret-0123"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "write:event"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
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
        let r = http
            .post(format!("{}/v1/user", auth.address))
            .json(&json!({"username": name, "password": PASSWORD,
                          "email": format!("{name}@example.com"),
                          "firstname": "Mallory", "lastname": "Example"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{name}");
        let session = login(&http, &auth.address, name, PASSWORD).await;
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
    let root = login(&http, &auth.address, ROOT_USER, ROOT_PASSWORD).await;
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
