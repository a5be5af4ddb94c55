use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_problem, eventually, new_user_id, spawn_app};

#[tokio::test]
async fn health_readiness_metrics_and_openapi_are_served() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Ready once the database and the broker answer (the shared broker may
    // be slow while other suites run).
    let v: Value = eventually(30, "/readyz to answer 200", || async {
        let r = app.http.get(app.url("/readyz")).send().await.unwrap();
        if r.status() == StatusCode::OK {
            Some(r.json().await.unwrap())
        } else {
            eprintln!("/readyz: {}", r.text().await.unwrap());
            None
        }
    })
    .await;
    assert_eq!(v["checks"]["database"], "ok");
    assert_eq!(v["checks"]["broker"], "ok");

    app.check("canmessage", &new_user_id()).await;
    let metrics = testkit::text_of(&app.url("/metrics")).await;
    assert!(
        metrics.contains(r#"http_requests_total{service="access-rule",method="GET",route="/canmessage",status="404"}"#),
        "{metrics}"
    );
    let spec: Value = testkit::json_of(&app.url("/openapi.json")).await;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/event",
        "/canmessage",
        "/canpurchase",
        "/v1/admin/users/{user_id}",
        "/v1/admin/users/{user_id}/lift",
        "/v1/admin/rules",
        "/v1/admin/rules/{rule}/reset",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} documented");
    }
}

#[tokio::test]
async fn unknown_routes_answer_problem_json_and_request_ids_are_echoed() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(app.url("/nope"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get("x-request-id").unwrap(), "abc-123");
    assert_problem(r, StatusCode::NOT_FOUND).await;
}
