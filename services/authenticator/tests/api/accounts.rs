use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, new_user, spawn_app};

#[tokio::test]
async fn registering_answers_201_with_the_account_and_never_the_hash() {
    let app = spawn_app().await;
    let body = new_user();
    let r = app.register(&body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let account: Value = r.json().await.unwrap();
    assert_eq!(account["username"], body["username"]);
    assert_eq!(account["email"], body["email"]);
    assert_eq!(account["firstname"], "Ada");
    assert_eq!(account["phone"], "+44 20 7946 0000");
    assert_eq!(account["is_active"], true);
    assert_eq!(
        location,
        format!("/v1/users/{}", account["id"].as_str().unwrap())
    );
    let text = account.to_string();
    assert!(
        !text.contains("password_hash") && !text.contains("$2"),
        "{text}"
    );
}

#[tokio::test]
async fn a_duplicate_username_or_email_is_409_whatever_the_case_of_the_email() {
    let app = spawn_app().await;
    let (first, _) = app.registered_user().await;

    let mut same_name = new_user();
    same_name["username"] = first["username"].clone();
    let p = assert_problem(app.register(&same_name).await, StatusCode::CONFLICT).await;
    assert_eq!(p["field"], "username");

    let mut same_email = new_user();
    same_email["email"] = json!(first["email"].as_str().unwrap().to_uppercase());
    let p = assert_problem(app.register(&same_email).await, StatusCode::CONFLICT).await;
    assert_eq!(p["field"], "email");
    assert_eq!(app.account_count().await, 2, "root and the first user only");
}

#[tokio::test]
async fn a_73_byte_password_is_refused_with_a_400_that_says_so() {
    let app = spawn_app().await;
    let mut body = new_user();
    body["password"] = json!(format!("Aa1!{}", "x".repeat(69)));
    let p = assert_problem(app.register(&body).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(p["rule"], "max_bytes");
    assert!(p["detail"].as_str().unwrap().contains("72 bytes"), "{p}");
    assert_eq!(app.account_count().await, 1);
}

#[tokio::test]
async fn weak_passwords_are_refused_naming_the_rule() {
    let app = spawn_app().await;
    for (password, rule) in [
        ("short1A", "min_length"),
        ("password123", "common_password"),
        ("alllowercase", "character_classes"),
    ] {
        let mut body = new_user();
        body["password"] = json!(password);
        let p = assert_problem(app.register(&body).await, StatusCode::BAD_REQUEST).await;
        assert_eq!(p["rule"], rule, "{password}");
        assert_eq!(p["field"], "password");
    }
    let mut body = new_user();
    body["username"] = json!("ab.cd-12345");
    body["password"] = json!("AB.cd-12345");
    let p = assert_problem(app.register(&body).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(p["rule"], "same_as_username");
}

#[tokio::test]
async fn malformed_bodies_answer_4xx_problem_json_and_store_nothing() {
    let app = spawn_app().await;
    let raw = |body: &'static str| {
        app.http
            .post(app.url("/v1/user"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_problem(raw("{not json").await.unwrap(), StatusCode::BAD_REQUEST).await;
    assert_problem(
        raw(r#"{"username":"abc"}"#).await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_problem(
        raw(r#"{"username":1,"password":"Sturdy-Passw0rd!","email":"a@b.co","firstname":"A","lastname":"B"}"#)
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let mut extra = new_user();
    extra["is_superuser"] = json!(true);
    assert_problem(app.register(&extra).await, StatusCode::BAD_REQUEST).await;
    let mut bad_email = new_user();
    bad_email["email"] = json!("not-an-email");
    let p = assert_problem(app.register(&bad_email).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(p["field"], "email");
    let mut bad_name = new_user();
    bad_name["username"] = json!("Bad Name");
    assert_problem(app.register(&bad_name).await, StatusCode::BAD_REQUEST).await;
    let r = app
        .http
        .post(app.url("/v1/user"))
        .body("username=x")
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let huge = json!({"username": "x".repeat(100_000)});
    assert_problem(app.register(&huge).await, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(
        app.account_count().await,
        1,
        "only the bootstrap superuser exists"
    );
}

#[tokio::test]
async fn login_returns_a_bearer_session_token() {
    let app = spawn_app().await;
    let (body, _) = app.registered_user().await;
    let r = app
        .login(body["username"].as_str().unwrap(), "Sturdy-Passw0rd!")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    assert!(v["message"].is_string());
    assert_eq!(v["session_token"].as_str().unwrap().split('.').count(), 3);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_401() {
    let app = spawn_app().await;
    let (body, _) = app.registered_user().await;
    let wrong = assert_problem(
        app.login(body["username"].as_str().unwrap(), "Wrong-Passw0rd!")
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let unknown = assert_problem(
        app.login("nobody-here", "Wrong-Passw0rd!").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(wrong, unknown);
}

#[tokio::test]
async fn repeated_failures_for_one_username_answer_429_with_retry_after() {
    let app = spawn_app().await;
    let (body, _) = app.registered_user().await;
    let name = body["username"].as_str().unwrap();
    for _ in 0..5 {
        assert_eq!(
            app.login(name, "Wrong-Passw0rd!").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let r = app.login(name, "Sturdy-Passw0rd!").await;
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS).await;
    // Another account is not affected.
    let (other, _) = app.registered_user().await;
    assert_eq!(
        app.login(other["username"].as_str().unwrap(), "Sturdy-Passw0rd!")
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_deactivated_account_is_refused_with_its_own_problem_type_until_reactivated() {
    let app = spawn_app().await;
    let (body, account) = app.registered_user().await;
    let name = body["username"].as_str().unwrap();
    let user_token = app.token(name, "Sturdy-Passw0rd!").await;
    let root = app.root_token().await;
    let id = account["id"].as_str().unwrap();
    let r = app
        .admin(
            reqwest::Method::POST,
            &format!("/v1/users/{id}/deactivate"),
            &root,
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let p = assert_problem(
        app.login(name, "Sturdy-Passw0rd!").await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(
        p["type"].as_str().unwrap().ends_with("/account-inactive"),
        "{p}"
    );
    // The session it already had stops working too.
    let r = app
        .http
        .get(app.url("/v1/me"))
        .bearer_auth(&user_token)
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::FORBIDDEN).await;
    // A wrong password still answers the generic 401: deactivation is not revealed.
    assert_problem(
        app.login(name, "Wrong-Passw0rd!").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    app.admin(
        reqwest::Method::POST,
        &format!("/v1/users/{id}/activate"),
        &root,
        None,
    )
    .await;
    assert_eq!(
        app.login(name, "Sturdy-Passw0rd!").await.status(),
        StatusCode::OK
    );
}
