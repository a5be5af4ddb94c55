//! Ranges and periods are checked before anything is read.

use reqwest::StatusCode;

use crate::helpers::{assert_problem, spawn};

#[tokio::test]
async fn a_bad_period_or_range_is_refused_with_the_field_that_broke_it() {
    let p = spawn().await;
    let admin = p.admin().await;
    for (query, field) in [
        ("period=year", "period"),
        ("from=2026-06-02&to=2026-06-01", "to"),
        ("from=2025-01-01&to=2026-01-02", "from"),
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
    ] {
        let r = p
            .get(
                &admin,
                &format!("/v1/analytics/tasks/most-expensive?{query}"),
            )
            .await;
        let body = assert_problem(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["field"], field, "{query}: {body}");
    }
    // 366 days is the longest range answered.
    let r = p
        .get(
            &admin,
            "/v1/analytics/tasks/most-expensive?period=month&from=2024-01-01&to=2024-12-31",
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}
