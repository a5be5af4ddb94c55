use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn health_readiness_metrics_and_openapi_are_served() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Ready once the revocations (oauth.revocation.v1) were read: polled.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let v: Value = loop {
        let r = app.http.get(app.url("/readyz")).send().await.unwrap();
        let ok = r.status() == StatusCode::OK;
        let v: Value = r.json().await.unwrap();
        if ok {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "/readyz stays {v}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    assert_eq!(v["checks"]["database"], "ok");
    assert_eq!(v["checks"]["broker"], "ok");
    assert_eq!(v["checks"]["revocations"], "ok");

    app.login("nobody-here", "Wrong-Passw0rd!").await;
    let metrics = testkit::text_of(&app.url("/metrics")).await;
    assert!(
        metrics.contains(r#"http_requests_total{service="authenticator",method="POST",route="/v1/login",status="401"}"#),
        "{metrics}"
    );
    let spec: Value = testkit::json_of(&app.url("/openapi.json")).await;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    assert!(spec["paths"]["/v1/login"]["post"].is_object());
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
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert!(r.headers().get("x-request-id").is_some());
}
