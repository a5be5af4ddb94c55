//! Organization admins' refresh tokens: `POST /admin/login` gives one,
//! `POST /admin/refresh` rotates it; a spent one presented again ends the
//! whole sign-in, and none outlives the admin's password or activity.

use std::time::Duration;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64URL, Engine};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const THIRTY_DAYS: u64 = 30 * 24 * 3600;

/// The access and refresh tokens of an answer of login or refresh.
async fn tokens_of(r: Response) -> (String, String) {
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["expires_in"], 3600);
    assert_eq!(v["refresh_token_expires_in"], THIRTY_DAYS);
    let refresh = v["refresh_token"].as_str().unwrap().to_owned();
    assert!(refresh.len() >= 43, "256 bits: {refresh}");
    (v["access_token"].as_str().unwrap().to_owned(), refresh)
}

async fn sign_in(app: &TestApp, email: &str, password: &str) -> (String, String) {
    tokens_of(app.login(email, password).await).await
}

async fn refresh(app: &TestApp, token: &str) -> Response {
    app.call(
        Method::POST,
        "/admin/refresh",
        None,
        Some(json!({"refresh_token": token})),
    )
    .await
}

/// The problem every refused refresh gets, whatever the reason.
async fn assert_invalid_grant(r: Response) -> Value {
    let p = assert_problem(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(p["type"], "https://errors.platform.example/invalid-grant");
    assert_eq!(p["error"], "invalid_grant");
    p
}

async fn org_get(app: &TestApp, org: &Org, token: &str) -> StatusCode {
    app.call(
        Method::GET,
        &format!("/org/get?organization_name={}", org.name),
        Some(token),
        None,
    )
    .await
    .status()
}

#[tokio::test]
async fn a_refresh_token_rotates_and_the_spent_one_is_refused() {
    let app = spawn_with_workos(Tweaks::default()).await;
    let org = app.org_with_workos(None).await;
    let (a1, r1) = sign_in(&app, &org.email, PASSWORD).await;
    let r = refresh(&app, &r1).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (a2, r2) = tokens_of(r).await;
    assert_ne!(a2, a1);
    assert_ne!(r2, r1);
    assert_eq!(org_get(&app, &org, &a2).await, StatusCode::OK);
    // The new one rotates in turn.
    let (a3, r3) = tokens_of(refresh(&app, &r2).await).await;
    assert_eq!(org_get(&app, &org, &a3).await, StatusCode::OK);
    assert_ne!(r3, r2);
    // The spent one is refused.
    assert_invalid_grant(refresh(&app, &r1).await).await;
    // Only digests are kept.
    assert_eq!(
        app.count(&format!(
            "admin_refresh_tokens WHERE token_sha256 = sha256(convert_to('{r3}', 'UTF8'))"
        )),
        1
    );
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_revokes_every_token_of_that_sign_in() {
    let app = spawn_with_workos(Tweaks::default()).await;
    let org = app.org_with_workos(None).await;
    let (_, r1) = sign_in(&app, &org.email, PASSWORD).await;
    let (_, r2) = tokens_of(refresh(&app, &r1).await).await;
    // Another sign-in of the same admin (another device).
    let (_, other) = sign_in(&app, &org.email, PASSWORD).await;
    // The spent token comes back (a thief's copy, say)...
    assert_invalid_grant(refresh(&app, &r1).await).await;
    // ...and the newest token of that sign-in stops working too.
    assert_invalid_grant(refresh(&app, &r2).await).await;
    // The other sign-in is not that family.
    tokens_of(refresh(&app, &other).await).await;
}

#[tokio::test]
async fn an_unknown_expired_or_malformed_refresh_token_gets_the_same_problem() {
    let app = spawn_with_workos(Tweaks::default()).await;
    let org = app.org_with_workos(None).await;
    let (_, live) = sign_in(&app, &org.email, PASSWORD).await;
    let unknown = assert_invalid_grant(refresh(&app, &"A".repeat(43)).await).await;
    app.sql("UPDATE admin_refresh_tokens SET expires_at = now() - interval '1 second'");
    let expired = assert_invalid_grant(refresh(&app, &live).await).await;
    assert_eq!(unknown, expired, "nothing tells them apart");
    for bad in ["", &"B".repeat(1000)] {
        let p = assert_invalid_grant(refresh(&app, bad).await).await;
        assert_eq!(p, unknown);
    }
    // Not the request's shape: a bad request, as for any route.
    let r = app
        .call(
            Method::POST,
            "/admin/refresh",
            None,
            Some(json!({"token": live})),
        )
        .await;
    assert_problem(r, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn two_simultaneous_refreshes_of_one_token_do_not_both_succeed() {
    let app = spawn_with_workos(Tweaks::default()).await;
    let org = app.org_with_workos(None).await;
    for _ in 0..3 {
        let (_, token) = sign_in(&app, &org.email, PASSWORD).await;
        let (a, b) = tokio::join!(refresh(&app, &token), refresh(&app, &token));
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 400]);
    }
}

#[tokio::test]
async fn a_password_change_through_the_directory_ends_the_admins_refresh_tokens() {
    let app = spawn_with_workos(Tweaks::default()).await;
    let org = app.org_with_workos(None).await;
    let (access, old) = sign_in(&app, &org.email, PASSWORD).await;
    let r = app
        .call(
            Method::PUT,
            "/org/update",
            Some(&access),
            Some(json!({"organization_name": org.name, "password": "Changed-Passw0rd!"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_invalid_grant(refresh(&app, &old).await).await;
    let (_, fresh) = sign_in(&app, &org.email, "Changed-Passw0rd!").await;
    tokens_of(refresh(&app, &fresh).await).await;
}

/// The admin account (`sub`) of an organization token.
fn subject(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&B64URL.decode(payload).unwrap()).unwrap();
    claims["sub"].as_str().unwrap().to_owned()
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

/// Refreshes (keeping the newest token) until the directory refuses: the
/// change travels on `iam.user.v1` (and a new consumer group first reads
/// what earlier tests published).
async fn refused_soon(app: &TestApp, mut token: String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let r = refresh(app, &token).await;
        if r.status() != StatusCode::OK {
            assert_invalid_grant(r).await;
            return;
        }
        token = tokens_of(r).await.1;
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refresh was never refused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_refresh_is_refused_after_the_admins_password_reset_or_deactivation() {
    let app = spawn_with_authenticator(Tweaks::default()).await;
    let reset = app.org().await;
    let gone = app.org().await;
    let (_, reset_refresh) = sign_in(&app, &reset.email, PASSWORD).await;
    let (_, gone_refresh) = sign_in(&app, &gone.email, PASSWORD).await;
    // Both work before.
    let (_, reset_refresh) = tokens_of(refresh(&app, &reset_refresh).await).await;
    let (_, gone_refresh) = tokens_of(refresh(&app, &gone_refresh).await).await;
    // An administrator resets one admin's password and deactivates the other.
    superuser_post(
        &app,
        &subject(&reset.token),
        "password",
        Some(json!({"password": "Reset-Passw0rd!2"})),
    )
    .await;
    superuser_post(&app, &subject(&gone.token), "deactivate", None).await;
    refused_soon(&app, reset_refresh).await;
    refused_soon(&app, gone_refresh).await;
    // The new password signs in to tokens that refresh.
    let (access, fresh) = sign_in(&app, &reset.email, "Reset-Passw0rd!2").await;
    assert_eq!(org_get(&app, &reset, &access).await, StatusCode::OK);
    let (access, _) = tokens_of(refresh(&app, &fresh).await).await;
    assert_eq!(org_get(&app, &reset, &access).await, StatusCode::OK);
    // The deactivated admin cannot sign in again.
    assert_problem(
        app.login(&gone.email, PASSWORD).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn expired_refresh_tokens_are_pruned_and_live_ones_stay() {
    let app = spawn_with_workos(Tweaks {
        tweak: Box::new(|o| o.retention_interval = Some(Duration::from_millis(200))),
        ..Tweaks::default()
    })
    .await;
    let org = app.org_with_workos(None).await;
    let (_, first) = sign_in(&app, &org.email, PASSWORD).await;
    let (_, live) = tokens_of(refresh(&app, &first).await).await;
    let (_, other) = sign_in(&app, &org.email, PASSWORD).await;
    // Four tokens in three sign-ins (the helper signed in once too): all
    // but the live one expired two hours ago.
    assert_eq!(app.count("admin_refresh_tokens"), 4);
    app.sql(&format!(
        "UPDATE admin_refresh_tokens SET expires_at = now() - interval '2 hours' \
         WHERE token_sha256 <> sha256(convert_to('{live}', 'UTF8'))"
    ));
    app.sql("UPDATE admin_refresh_families SET created_at = now() - interval '2 hours'");
    eventually(
        30,
        "the expired tokens and the emptied sign-ins pruned",
        || async {
            (app.count("admin_refresh_tokens") == 1 && app.count("admin_refresh_families") == 1)
                .then_some(())
        },
    )
    .await;
    // The live token still refreshes.
    tokens_of(refresh(&app, &live).await).await;
    assert_invalid_grant(refresh(&app, &other).await).await;
}
