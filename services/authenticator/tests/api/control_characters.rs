//! NUL bytes and other control characters, which PostgreSQL cannot store
//! (NUL) or no account field has a use for: 400 problem+json naming the
//! rule, never a 500, and nothing changes.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, new_user, spawn_app, TestApp, ROOT_PASSWORD, ROOT_USER};

const PASSWORD: &str = "Sturdy-Passw0rd!";

/// Asserts the control-character refusal, found in `place`.
async fn assert_refused(r: reqwest::Response, place: &str) -> Value {
    let p = assert_problem(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(p["rule"], "no_control_characters", "{p}");
    assert_eq!(p["in"], place, "{p}");
    p
}

async fn login_status(app: &TestApp, username: &str, password: &str) -> StatusCode {
    app.login(username, password).await.status()
}

#[tokio::test]
async fn a_nul_byte_in_a_login_or_registration_field_is_400_and_changes_nothing() {
    let app = spawn_app().await;
    let (user, _) = app.registered_user().await;
    let name = user["username"].as_str().unwrap();
    let accounts = app.account_count().await;

    for (username, password) in [
        (format!("{name}\u{0}"), PASSWORD.to_owned()),
        (name.to_owned(), format!("{PASSWORD}\u{0}")),
        (format!("{name}\u{1b}[2J"), PASSWORD.to_owned()),
    ] {
        let r = app.login(&username, &password).await;
        let p = assert_refused(r, "body").await;
        assert!(p["detail"].as_str().unwrap().contains("U+00"), "{p}");
    }
    for (field, value) in [
        ("username", "nul\u{0}user"),
        ("firstname", "Ada\u{0}"),
        ("email", "bell\u{7}@example.com"),
        ("lastname", "Love\u{7f}lace"),
    ] {
        let mut body = new_user();
        body[field] = json!(value);
        assert_refused(app.register(&body).await, "body").await;
    }
    // The refusals counted as no failed login, and created no account.
    assert_eq!(login_status(&app, name, PASSWORD).await, StatusCode::OK);
    assert_eq!(app.account_count().await, accounts);
}

#[tokio::test]
async fn a_control_character_in_a_query_or_path_is_400_and_a_newline_in_a_body_is_fine() {
    let app = spawn_app().await;
    let root = app.root_token().await;
    for q in [
        "username_prefix=%00",
        "username_prefix=a%0D%0Ab",
        "active=true%00",
    ] {
        let r = app
            .admin(Method::GET, &format!("/v1/users?{q}"), &root, None)
            .await;
        assert_refused(r, "query").await;
    }
    let r = app.admin(Method::GET, "/v1/users/%00", &root, None).await;
    assert_refused(r, "path").await;
    // An escaped backslash before "u0000" is text, not a NUL: an ordinary
    // wrong password, and the newline in it is no control character to refuse.
    let r = app.login(ROOT_USER, "not\\u0000 the\npassword").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        login_status(&app, ROOT_USER, ROOT_PASSWORD).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_nul_byte_deep_in_a_large_batch_is_400_and_creates_no_account() {
    let app = spawn_app().await;
    let root = app.root_token().await;
    let accounts = app.account_count().await;
    // Larger than MAX_BODY_BYTES: read past the part held for inspection.
    let mut users: Vec<Value> = (0..400).map(|_| new_user()).collect();
    users[399]["firstname"] = json!("Ada\u{0}");
    let body = json!(users);
    assert!(body.to_string().len() > 64 * 1024);
    let r = app
        .admin(Method::POST, "/v1/users/batch", &root, Some(body))
        .await;
    assert_refused(r, "body").await;
    assert_eq!(app.account_count().await, accounts);
}
