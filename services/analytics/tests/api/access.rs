//! Who may read the reports: admins (`read:analytics`) only.

use reqwest::StatusCode;

use crate::helpers::{assert_problem, spawn};

const PATHS: [&str; 3] = [
    "/v1/analytics/earnings/today",
    "/v1/analytics/workers/negative-balance",
    "/v1/analytics/tasks/most-expensive?period=week",
];

#[tokio::test]
async fn an_employee_is_refused_the_reports_and_an_admin_reads_them() {
    let p = spawn().await;
    let (employee, token) = p.caller("Employee", "read:accounting").await;
    // An Employee cannot even ask the safekeeper for the scope.
    assert!(p
        .try_token(&employee.session, "read:analytics")
        .await
        .is_none());
    let admin = p.admin().await;
    for path in PATHS {
        let body = assert_problem(p.get(&token, path).await, StatusCode::FORBIDDEN).await;
        assert_eq!(
            body["missing_scopes"],
            serde_json::json!(["read:analytics"])
        );
        assert_eq!(p.get(&admin, path).await.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn a_request_without_a_valid_token_is_refused() {
    let p = spawn().await;
    for path in PATHS {
        let r = p.http.get(p.url(path)).send().await.unwrap();
        assert_problem(r, StatusCode::UNAUTHORIZED).await;
        assert_problem(p.get("not-a-token", path).await, StatusCode::UNAUTHORIZED).await;
    }
}
