//! Assertions and calls on the HTTP answers every service gives.

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

/// Asserts an RFC 9457 problem+json answer with `status` (in the header
/// and in the body); returns the body.
pub async fn assert_problem(r: Response, status: StatusCode) -> Value {
    let got = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let body: Value = r.json().await.expect("a JSON body");
    assert_eq!(got, status, "{body}");
    assert_eq!(ct.as_deref(), Some("application/problem+json"), "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(
        body["type"].is_string() && body["title"].is_string(),
        "{body}"
    );
    body
}

/// Signs `username` in at the authenticator at `auth` (its URL); returns
/// the session token. Panics unless the login succeeds.
pub async fn session(http: &reqwest::Client, auth: &str, username: &str, password: &str) -> String {
    let r = http
        .post(format!("{auth}/v1/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("the authenticator answers");
    assert_eq!(r.status(), StatusCode::OK, "login of {username}");
    r.json::<Value>().await.expect("a JSON body")["session_token"]
        .as_str()
        .expect("a session token")
        .to_owned()
}

/// The body of `GET url`, as text. Panics unless the service answers.
pub async fn text_of(url: &str) -> String {
    reqwest::get(url)
        .await
        .expect("the service answers")
        .text()
        .await
        .expect("a body")
}

/// The body of `GET url`, as JSON. Panics unless the service answers JSON.
pub async fn json_of(url: &str) -> Value {
    serde_json::from_str(&text_of(url).await).expect("a JSON body")
}

/// Fetches the OpenAPI document the service at `address` serves and holds
/// the routes it registers to it (`platform::routecheck`): nothing
/// documented is missing, nothing served is undocumented. `manifest_dir`
/// is the service crate's (`env!("CARGO_MANIFEST_DIR")`).
pub async fn assert_routes_match_its_document(address: &str, manifest_dir: &str) {
    let doc = text_of(&format!("{address}/openapi.json")).await;
    platform::routecheck::assert_routes_match_document(address, &doc, manifest_dir).await;
}

/// The JSON body of `GET url` with `token` as bearer, when it answers 200
/// (`None` otherwise: for waiting with [`crate::eventually`]).
pub async fn json_of_with(http: &reqwest::Client, url: &str, token: &str) -> Option<Value> {
    let r = http.get(url).bearer_auth(token).send().await.ok()?;
    (r.status() == StatusCode::OK).then_some(())?;
    r.json().await.ok()
}
