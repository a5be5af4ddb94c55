//! An organization admin's sign-in, as an attacker sees it: a stranger's
//! wrong passwords must not lock the admin out, and an organization token
//! must not outlive the admin's password reset or deactivation.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64URL, Engine};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

/// The claims of a token, read without verifying it (the test's own).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64URL.decode(payload).unwrap()).unwrap()
}

/// A client whose requests leave from `address` (any of 127.0.0.0/8 is
/// this machine), as a different person's would.
fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn login_from(
    app: &TestApp,
    client: &reqwest::Client,
    email: &str,
    password: &str,
) -> reqwest::Response {
    client
        .post(app.url("/admin/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

/// Waits until the directory applies `iam.user.v1` (its consumer has
/// joined the topic): a member's name changed at the authenticator shows
/// in the directory. The timings measured afterwards are the event path's,
/// not the consumer's start.
async fn wait_for_the_event_stream(app: &TestApp, org: &Org) -> String {
    let r = app
        .create_user(org, &format!("ada@{}.example", org.name), "member")
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let user: Value = r.json().await.unwrap();
    let (id, reference) = (
        user["id"].as_str().unwrap().to_owned(),
        user["reference_id"].as_str().unwrap(),
    );
    let r = app
        .http
        .patch(format!(
            "{}/v1/users/{reference}",
            app.auth.as_ref().unwrap()
        ))
        .bearer_auth(app.root().await)
        .json(&json!({"firstname": "Augusta"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let path = format!("/v1/users/{id}");
    eventually(60, "iam.user.v1 applied by the directory", || async {
        let v: Value = app
            .call(Method::GET, &path, Some(&org.token), None)
            .await
            .json()
            .await
            .ok()?;
        (v["first_name"] == "Augusta").then_some(())
    })
    .await;
    id
}

/// As the authenticator's superuser: `POST /v1/users/{id}/{action}`.
async fn superuser_post(app: &TestApp, account: &str, action: &str, body: Option<Value>) {
    let mut r = app
        .http
        .post(format!(
            "{}/v1/users/{account}/{action}",
            app.auth.as_ref().unwrap()
        ))
        .bearer_auth(app.root().await);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

/// Polls `path` with `token` for at most `within` until it answers 401;
/// how long that took.
async fn refused_within(
    app: &TestApp,
    path: &str,
    token: &str,
    since: Instant,
    within: Duration,
) -> Duration {
    loop {
        let r = app.call(Method::GET, path, Some(token), None).await;
        if r.status() == StatusCode::UNAUTHORIZED {
            assert_problem(r, StatusCode::UNAUTHORIZED).await;
            return since.elapsed();
        }
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            since.elapsed() < within * 20,
            "{path} still accepts the old token {:?} after the change",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_org_token_stops_working_within_a_second_of_the_admins_password_reset() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let org = app.org().await;
    let member = wait_for_the_event_stream(&app, &org).await;
    let get = format!("/org/get?organization_name={}", org.name);
    let member_path = format!("/v1/users/{member}");
    // Both kinds of check (the organization read per request, and the
    // member read remembered in memory) accept the token now.
    for path in [&get, &member_path] {
        let r = app.call(Method::GET, path, Some(&org.token), None).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let admin = claims(&org.token)["sub"].as_str().unwrap().to_owned();
    superuser_post(
        &app,
        &admin,
        "password",
        Some(json!({"password": "Reset-Passw0rd!2"})),
    )
    .await;
    let reset = Instant::now();
    let took = refused_within(&app, &get, &org.token, reset, Duration::from_secs(1)).await;
    refused_within(
        &app,
        &member_path,
        &org.token,
        reset,
        Duration::from_secs(1),
    )
    .await;
    println!("old org token refused {took:?} after the reset");
    assert!(took < Duration::from_secs(1), "DIAG took {took:?}");
    // The old password is gone; the new one signs in to a token that works.
    assert_problem(
        app.login(&org.email, PASSWORD).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let fresh = app.token(&org.email, "Reset-Passw0rd!2").await;
    let r = app.call(Method::GET, &get, Some(&fresh), None).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_org_token_stops_working_within_a_second_of_the_admins_deactivation() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let org = app.org().await;
    let member = wait_for_the_event_stream(&app, &org).await;
    let get = format!("/org/get?organization_name={}", org.name);
    let member_path = format!("/v1/users/{member}");
    let r = app
        .call(Method::GET, &member_path, Some(&org.token), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let admin = claims(&org.token)["sub"].as_str().unwrap().to_owned();
    superuser_post(&app, &admin, "deactivate", None).await;
    let deactivated = Instant::now();
    refused_within(&app, &get, &org.token, deactivated, Duration::from_secs(1)).await;
    refused_within(
        &app,
        &member_path,
        &org.token,
        deactivated,
        Duration::from_secs(1),
    )
    .await;
    // Nor can the admin sign in again.
    assert_problem(app.login(&org.email, PASSWORD).await, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn a_strangers_wrong_passwords_from_one_address_do_not_lock_the_admin_out_of_another() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let org = app.org().await;
    let stranger = client_from("127.0.0.2");
    let mut last = StatusCode::OK;
    for i in 0..60 {
        let r = login_from(&app, &stranger, &org.email, &format!("Guess-Passw0rd!{i}")).await;
        last = r.status();
        assert!(
            last == StatusCode::UNAUTHORIZED || last == StatusCode::TOO_MANY_REQUESTS,
            "attempt {i}: {last}"
        );
    }
    // The stranger is slowed down...
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    // ...the admin, elsewhere, is not.
    let admin = client_from("127.0.0.3");
    let r = login_from(&app, &admin, &org.email, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .call(
            Method::GET,
            &format!("/org/get?organization_name={}", org.name),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn with_workos_the_admins_address_goes_with_the_sign_in() {
    let app = spawn_with_workos(Tweaks::default()).await;
    let org = app.org_with_workos(Some("org_01HZSIGNIN")).await;
    let r = login_from(&app, &client_from("127.0.0.4"), &org.email, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let addresses = app.fake().state.lock().unwrap().sign_in_addresses.clone();
    assert_eq!(addresses.last(), Some(&Some("127.0.0.4".to_owned())));
    // No epochs at WorkOS: the token works as before.
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(claims(&token)["sep"], 0);
    let r = app
        .call(
            Method::GET,
            &format!("/org/get?organization_name={}", org.name),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}
