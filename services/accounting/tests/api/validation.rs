//! Bad input is answered 400 with a problem document naming the field.

use reqwest::StatusCode;

use crate::helpers::{assert_problem, spawn};

#[tokio::test]
async fn bad_input_is_answered_400_problem_json() {
    let p = spawn().await;
    let (_, admin) = p
        .worker_with("admin", "su_read:accounting,close:accounting")
        .await;
    for (path, field) in [
        ("/v1/accounting/accounts/someone", Some("account")),
        ("/v1/accounting/accounts/me/ledger?limit=0", Some("limit")),
        ("/v1/accounting/accounts/me/ledger?limit=501", Some("limit")),
        (
            "/v1/accounting/accounts/me/ledger?before=-1",
            Some("before"),
        ),
        ("/v1/accounting/accounts/me/ledger?limit=ten", None),
        ("/v1/accounting/earnings?from=yesterday", Some("from")),
        (
            "/v1/accounting/earnings?from=2026-12-03&to=2026-12-01",
            Some("to"),
        ),
        (
            "/v1/accounting/earnings?from=2020-01-01&to=2026-12-01",
            Some("from"),
        ),
    ] {
        let r = p.get(&admin, path).await;
        let body = assert_problem(r, StatusCode::BAD_REQUEST).await;
        if let Some(f) = field {
            assert_eq!(body["field"], f, "{path}");
        }
    }
    let r = p
        .http
        .post(p.url("/v1/accounting/closes"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"day": "12/02/2026"}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["field"], "day");
    let r = p
        .http
        .post(p.url("/v1/accounting/closes"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::BAD_REQUEST).await;
}
