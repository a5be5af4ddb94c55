//! Bad input answers 400 (or 422 for a well-formed reference to nothing),
//! as problem+json, and changes nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn, EMPLOYEE_SCOPES};

#[tokio::test]
async fn bad_dates_sort_injection_and_oversized_pages_are_400_and_change_nothing() {
    let p = spawn().await;
    let boss = p.person(Some("Employer")).await;
    let ann = p.person(Some("Employee")).await;
    let bt = p
        .token(&boss, "create:task,su_read:task,su_edit:task")
        .await;
    let at = p.token(&ann, EMPLOYEE_SCOPES).await;
    let t = p
        .create(
            &bt,
            json!({"title": "Keep me", "type_id": 1, "assignee": ann.username}),
        )
        .await;
    let id = t["id"].as_str().unwrap().to_owned();
    let before = p.all(json!({"counting": true})).await;

    let bad_bodies = [
        json!({"start_date": "10/10/2020"}),
        json!({"end_date": "2024-10-10"}),
        json!({"start_date": "2024-10-10 00:00:00'; DROP TABLE task; --"}),
        json!({"start_date": "2024-10-11 00:00:00", "end_date": "2024-10-10 00:00:00"}),
        json!({"sort": "created_at; DROP TABLE task"}),
        json!({"sort": "-created_at,(SELECT 1)"}),
        json!({"sort": "password"}),
        json!({"_size": 101}),
        json!({"_size": 0}),
        json!({"_from": -1}),
    ];
    for path in ["/v1/task/own", "/v1/task/all", "/v1/task/summary"] {
        let token = if path == "/v1/task/own" { &at } else { &bt };
        for body in &bad_bodies {
            let r = p.post(token, path, body.clone()).await;
            let problem = assert_problem(r, StatusCode::BAD_REQUEST).await;
            assert!(problem["detail"].is_string(), "{path} {body}: {problem}");
        }
    }
    let problem = assert_problem(
        p.post(&at, "/v1/task/own", json!({"_size": 1000})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(problem["field"], "_size");
    assert!(problem["detail"].as_str().unwrap().contains("100"));
    let problem = assert_problem(
        p.post(&at, "/v1/task/own", json!({"start_date": "yesterday"}))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(problem["rule"], "date_format");

    // query: allowed keys with typed values only; own has no query at all.
    for query in [
        json!({"title": "Keep me"}),
        json!({"status_id": "1 OR 1=1"}),
        json!({"assignee": "x' OR '1'='1"}),
        json!({"1=1": true}),
    ] {
        let r = p.post(&bt, "/v1/task/all", json!({"query": query})).await;
        assert_problem(r, StatusCode::BAD_REQUEST).await;
    }
    let r = p
        .post(&at, "/v1/task/own", json!({"query": {"status_id": 1}}))
        .await;
    assert_problem(r, StatusCode::BAD_REQUEST).await;

    // Creating: unknown fields, bad values, references to nothing.
    for (body, status) in [
        (
            json!({"title": "x", "type_id": 1, "status_id": 4}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"title": "x", "type_id": 1, "creator": ann.id}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"title": "", "type_id": 1}), StatusCode::BAD_REQUEST),
        (json!({"title": "x"}), StatusCode::BAD_REQUEST),
        (
            json!({"title": "x", "type_id": "1"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"title": "x", "type_id": 1, "due_date": "soon"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"title": "x", "type_id": 9}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"title": "x", "type_id": 1, "severity_id": 9}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"title": "x", "type_id": 1, "assignee": "nobody.here"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"title": "x", "type_id": 1, "assignee": uuid::Uuid::new_v4()}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"title": "x", "type_id": 1, "parent": uuid::Uuid::new_v4()}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let r = p.post(&bt, "/v1/task", body.clone()).await;
        let problem = assert_problem(r, status).await;
        assert!(problem["detail"].is_string(), "{body}: {problem}");
    }
    let r = p
        .http
        .post(p.url("/v1/task"))
        .bearer_auth(&bt)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::BAD_REQUEST).await;

    // Assigning: only task_id and assignee.
    for (body, status) in [
        (
            json!({"task_id": id, "assignee": ann.username, "title": "Hijacked"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"task_id": id, "assignee": ann.username, "status_id": 4}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"task_id": id}), StatusCode::BAD_REQUEST),
        (
            json!({"task_id": id, "assignee": "nobody.here"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"task_id": uuid::Uuid::new_v4(), "assignee": ann.username}),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let r = p.post(&bt, "/v1/task/assignment", body).await;
        assert_problem(r, status).await;
    }
    // Moving: only status_id.
    let r = p
        .post(
            &at,
            &format!("/v1/tasks/{id}"),
            json!({"status_id": 2, "title": "Hijacked"}),
        )
        .await;
    assert_problem(r, StatusCode::BAD_REQUEST).await;
    let r = p
        .post(&at, "/v1/tasks/not-a-uuid", json!({"status_id": 2}))
        .await;
    assert_problem(r, StatusCode::NOT_FOUND).await;

    // Nothing changed.
    let after = p.all(json!({"counting": true})).await;
    assert_eq!(before, after);
    let got = p.get_task(&bt, &id).await;
    assert_eq!(got["title"], "Keep me");
    assert_eq!(got["status"], "To Do");
    assert_eq!(got["history"].as_array().unwrap().len(), 1);
    assert_eq!(got["assignee"], Value::String(ann.username.clone()));
}

#[tokio::test]
async fn an_inactive_user_cannot_be_assigned() {
    let p = spawn().await;
    let boss = p.person(Some("Employer")).await;
    let gone = p.person(Some("Employee")).await;
    let bt = p.token(&boss, "create:task,su_edit:task").await;
    let t = p
        .create(&bt, json!({"title": "Orphan", "type_id": 1}))
        .await;
    p.deactivate(&gone.id).await;
    p.wait_for_user(&gone.id, |u| u["active"] == false).await;
    let r = p
        .post(
            &bt,
            "/v1/task",
            json!({"title": "x", "type_id": 1, "assignee": gone.username}),
        )
        .await;
    let problem = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(problem["type"]
        .as_str()
        .unwrap()
        .ends_with("/inactive-assignee"));
    let r = p
        .post(
            &bt,
            "/v1/task/assignment",
            json!({"task_id": t["id"], "assignee": gone.id}),
        )
        .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
}
