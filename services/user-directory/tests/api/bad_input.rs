use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

/// Method, path, token, body, expected status.
type Case<'a> = (
    Method,
    &'a str,
    Option<&'a str>,
    Option<serde_json::Value>,
    StatusCode,
);

#[tokio::test]
async fn bad_input_everywhere_is_a_4xx_problem_and_stores_nothing() {
    let app = spawn_with_workos(Tweaks::default()).await;
    let org = app.org_with_workos(Some("org_01HZBAD")).await;
    let t = Some(org.token.as_str());
    let cases: Vec<Case<'_>> = vec![
        (
            Method::POST,
            "/org/create",
            None,
            Some(json!({"organization_name": "x"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/org/create",
            None,
            Some(json!({"organization_name": "ok-name", "email": "no", "password": PASSWORD})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/org/create",
            None,
            Some(
                json!({"organization_name": "ok-name", "email": "a@b.example", "password": PASSWORD, "admin": true}),
            ),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/org/create",
            None,
            Some(json!([1, 2])),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/admin/login",
            None,
            Some(json!({"email": 5})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/admin/login",
            None,
            Some(json!({"email": "nobody@example.com", "password": "x"})),
            StatusCode::UNAUTHORIZED,
        ),
        (Method::GET, "/org/get", t, None, StatusCode::BAD_REQUEST),
        (
            Method::GET,
            "/org/get?organization_name=x",
            Some("not-a-token"),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::PUT,
            "/org/update",
            t,
            Some(json!({"organization_name": org.name})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            "/org/update",
            t,
            Some(json!({"organization_name": org.name, "new_organization_name": "bad name"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            "/org/delete",
            t,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/v1/users",
            t,
            Some(json!({"email": "a@b.example"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/v1/users",
            t,
            Some(
                json!({"email": "a@b.example", "first_name": "A", "last_name": "B", "organization": org.name, "role": "member", "x": 1}),
            ),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/v1/users",
            None,
            Some(
                json!({"email": "a@b.example", "first_name": "A", "last_name": "B", "organization": org.name, "role": "member"}),
            ),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::GET,
            "/v1/users/not-a-uuid",
            t,
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/v1/users?limit=0",
            t,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/v1/users?offset=-1",
            t,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/v1/users?colour=red",
            t,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/v1/imports/00000000-0000-0000-0000-000000000000",
            t,
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PUT,
            "/org/data/_secret",
            t,
            Some(json!(1)),
            StatusCode::BAD_REQUEST,
        ),
        (Method::GET, "/nowhere", None, None, StatusCode::NOT_FOUND),
    ];
    for (method, path, token, body, status) in cases {
        let r = app.call(method.clone(), path, token, body.clone()).await;
        let p = assert_problem(r, status).await;
        assert!(p["title"].is_string(), "{method} {path}: {p}");
    }
    // Not JSON at all.
    let r = app
        .http
        .post(app.url("/org/create"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::BAD_REQUEST).await;
    let r = app
        .http
        .post(app.url("/org/create"))
        .body("organization_name=x")
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    // A webhook that is signed but not an event.
    let now = chrono::Utc::now().timestamp_millis();
    let r = app
        .webhook("[]", Some(sign(WEBHOOK_SECRET, now, "[]")))
        .await;
    assert_problem(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(app.count("organizations"), 1);
    assert_eq!(app.count("users"), 0);
    assert_eq!(app.count("user_creations"), 0);
    assert_eq!(app.count("provider_events"), 0);
}
