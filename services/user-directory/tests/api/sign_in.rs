//! An organization admin's sign-in, as an attacker sees it: a stranger's
//! wrong passwords must not lock the admin out, and an organization token
//! must not outlive the admin's password reset or deactivation.

use std::{net::IpAddr, time::Instant};

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
    testkit::http_client_builder()
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

/// A member of `org` (whose reads are remembered in memory), once the
/// directory has caught up with the admin's account on `iam.user.v1`: a
/// change of the admin's name at the authenticator is recorded in the
/// directory. What is timed afterwards is the path of one event, not the
/// consumer's start nor the backlog of events other tests published
/// before (a new consumer group reads the topic from its start).
async fn caught_up(app: &TestApp, org: &Org) -> String {
    let r = app
        .create_user(org, &format!("ada@{}.example", org.name), "member")
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let member = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = claims(&org.token)["sub"].as_str().unwrap().to_owned();
    let r = app
        .http
        .patch(format!("{}/v1/users/{admin}", app.auth.as_ref().unwrap()))
        .bearer_auth(app.root().await)
        .json(&json!({"firstname": "Augusta"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let version = r.json::<Value>().await.unwrap()["version"]
        .as_i64()
        .unwrap();
    // Not visible through the API: the admin's row in the read model.
    let applied = format!(
        "organizations WHERE id = '{}' AND admin_provider_version >= {version}",
        org.id
    );
    eventually(120, "the directory caught up with iam.user.v1", || async {
        (app.count(&applied) == 1).then_some(())
    })
    .await;
    member
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

/// `path` comes to refuse `token` (401 problem+json) after a change made
/// at `since`: the change travels on `iam.user.v1` (about a second on an
/// idle machine; a figure to measure, not to assert, so that a loaded CI
/// machine does not fail it).
async fn refused_soon(app: &TestApp, path: &str, token: &str, since: Instant) {
    eventually(15, &format!("{path} refusing the old token"), || async {
        let r = app.call(Method::GET, path, Some(token), None).await;
        if r.status() == StatusCode::OK {
            return None;
        }
        Some(assert_problem(r, StatusCode::UNAUTHORIZED).await)
    })
    .await;
    eprintln!(
        "{path} refused the old token {:?} after the change",
        since.elapsed()
    );
}

#[tokio::test]
async fn an_org_token_stops_working_after_the_admins_password_reset() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let org = app.org().await;
    let member = caught_up(&app, &org).await;
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
    refused_soon(&app, &get, &org.token, reset).await;
    refused_soon(&app, &member_path, &org.token, reset).await;
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
async fn an_org_token_stops_working_after_the_admins_deactivation() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let org = app.org().await;
    let member = caught_up(&app, &org).await;
    let get = format!("/org/get?organization_name={}", org.name);
    let member_path = format!("/v1/users/{member}");
    let r = app
        .call(Method::GET, &member_path, Some(&org.token), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let admin = claims(&org.token)["sub"].as_str().unwrap().to_owned();
    superuser_post(&app, &admin, "deactivate", None).await;
    let deactivated = Instant::now();
    refused_soon(&app, &get, &org.token, deactivated).await;
    refused_soon(&app, &member_path, &org.token, deactivated).await;
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
