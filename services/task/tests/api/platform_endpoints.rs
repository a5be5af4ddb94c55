use reqwest::StatusCode;
use serde_json::Value;

use testkit::TestDatabase;

/// The task service alone (no safekeeper behind it).
async fn lone_app() -> (testkit::task::Running, TestDatabase) {
    let db = testkit::task::database();
    let app = testkit::task::spawn(testkit::task::Options::new(
        testkit::shared_brokers(),
        &db,
        "http://127.0.0.1:9",
    ))
    .await;
    (app, db)
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi_are_served() {
    let (app, _db) = lone_app().await;
    let http = testkit::http_client();
    let get = |path: &str| http.get(format!("{}{path}", app.address)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    // Readiness is what one polls: on a loaded machine the broker's first
    // metadata answer may take longer than the probe's one second.
    let mut v = Value::Null;
    for _ in 0..100 {
        let r = get("/readyz").await.unwrap();
        let ok = r.status() == StatusCode::OK;
        v = r.json().await.unwrap();
        if ok {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(v["checks"]["database"], "ok");
    assert_eq!(v["checks"]["broker"], "ok");
    let r = http
        .post(format!("{}/v1/task/own", app.address))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(
            r#"http_requests_total{service="task",method="POST",route="/v1/task/own",status="401"}"#
        ),
        "{metrics}"
    );
    let spec: Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/task/own",
        "/v1/task/all",
        "/v1/task",
        "/v1/tasks/{id}",
        "/v1/task/assignment",
        "/v1/task/summary",
    ] {
        assert!(spec["paths"][path]["post"].is_object(), "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_jwks_is_a_503_and_unknown_routes_are_problem_json() {
    let (app, _db) = lone_app().await;
    let http = testkit::http_client();
    // A well-formed EdDSA at+jwt whose keys cannot be fetched.
    let ring =
        platform::jwt::KeyRing::new(platform::jwt::SigningKey::generate().unwrap().0, vec![]);
    let token = ring
        .sign(
            platform::jwt::ACCESS_TYP,
            &serde_json::json!({"sub": "x", "iss": "y", "exp": 9999999999_i64, "iat": 0}),
        )
        .unwrap();
    let r = http
        .post(format!("{}/v1/task/own", app.address))
        .bearer_auth(token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    let r = http
        .get(format!("{}/nope", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    app.stop().await;
}
