//! NUL bytes and other control characters in task fields, queries and
//! paths: 400 problem+json naming the rule, never a 500 (PostgreSQL refuses
//! NUL in text), and no task is created or changed. Line breaks and tabs in
//! a description stay allowed.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, ids, spawn};

async fn assert_refused(r: reqwest::Response, place: &str) -> Value {
    let p = assert_problem(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(p["rule"], "no_control_characters", "{p}");
    assert_eq!(p["in"], place, "{p}");
    p
}

#[tokio::test]
async fn a_nul_byte_in_a_task_field_query_or_path_is_400_and_changes_no_task() {
    let p = spawn().await;
    let boss = p.person(Some("Employer")).await;
    let ann = p.person(Some("Employee")).await;
    let bt = p
        .token(&boss, "create:task,su_read:task,su_edit:task")
        .await;
    let t = p
        .create(
            &bt,
            json!({"title": "Keep me", "type_id": 1, "assignee": ann.username,
                   "description": "first line\nsecond line\n\tindented"}),
        )
        .await;
    let id = t["id"].as_str().unwrap().to_owned();
    let before = p.all(json!({"counting": true})).await;

    for body in [
        json!({"title": "Nul\u{0}title", "type_id": 1, "assignee": ann.username}),
        json!({"title": "Fine", "description": "bell\u{7}", "type_id": 1, "assignee": ann.username}),
        json!({"title": "Fine", "type_id": 1, "assignee": format!("{}\u{0}", ann.username)}),
    ] {
        assert_refused(p.post(&bt, "/v1/task", body).await, "body").await;
    }
    assert_refused(
        p.post(&bt, "/v1/task/all", json!({"sort": "title\u{0}"}))
            .await,
        "body",
    )
    .await;
    assert_refused(
        p.post(
            &bt,
            &format!("/v1/tasks/{id}"),
            json!({"status_id": 2, "note": "Changed\u{0}"}),
        )
        .await,
        "body",
    )
    .await;
    let r = p
        .http
        .get(p.url(&format!("/v1/tasks/{id}")))
        .query(&[("expand", "\u{0}")])
        .bearer_auth(&bt)
        .send()
        .await
        .unwrap();
    assert_refused(r, "query").await;
    let r = p
        .http
        .get(p.url("/v1/tasks/%00"))
        .bearer_auth(&bt)
        .send()
        .await
        .unwrap();
    assert_refused(r, "path").await;

    let after = p.all(json!({"counting": true})).await;
    assert_eq!(after, before);
    assert_eq!(ids(&after), std::slice::from_ref(&id));
    let kept = p.get_task(&bt, &id).await;
    assert_eq!(kept["title"], "Keep me");
    assert_eq!(kept["status"], "To Do");
    assert_eq!(kept["description"], "first line\nsecond line\n\tindented");
}
