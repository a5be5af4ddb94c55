use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn health_readiness_metrics_openapi_and_jwks_are_served() {
    let app = spawn_with_workos(Tweaks::default()).await;
    assert_eq!(
        app.call(Method::GET, "/healthz", None, None).await.status(),
        StatusCode::OK
    );
    eventually(30, "readiness", || async {
        (app.call(Method::GET, "/readyz", None, None).await.status() == StatusCode::OK)
            .then_some(())
    })
    .await;
    let metrics = app
        .call(Method::GET, "/metrics", None, None)
        .await
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("http_requests_total"));
    let spec: Value = app
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    for path in [
        "/org/create",
        "/admin/login",
        "/v1/users",
        "/v1/users/import",
        "/v1/webhooks/workos",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} documented");
    }
    let jwks: Value = app
        .call(Method::GET, "/.well-known/jwks.json", None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
}
