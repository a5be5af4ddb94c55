//! Two replicas of the task service on one database: each keeps `/own`
//! pages in memory, and neither may answer with a page another one's
//! change made stale for longer than its notification takes.

use diesel::{Connection, PgConnection, RunQueryDsl};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{eventually, spawn, task_options, EMPLOYEE_SCOPES, IN_PROGRESS};

/// The caller's own page, through `base`.
async fn own_titles(http: &reqwest::Client, base: &str, token: &str) -> Vec<(String, String)> {
    let r = http
        .post(format!("{base}/v1/task/own"))
        .bearer_auth(token)
        .json(&json!({"counting": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let tasks = v["tasks"].as_array().unwrap();
    assert_eq!(v["count"], tasks.len(), "{v}");
    tasks
        .iter()
        .map(|t| {
            (
                t["title"].as_str().unwrap().to_owned(),
                t["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_change_through_one_replica_reaches_the_others_pages_and_its_own_at_once() {
    let p = spawn().await;
    let other = testkit::task::spawn(task_options(&p.brokers, &p.task_db, &p.sk)).await;
    let (a, b) = (p.task.clone(), other.address.clone());
    let boss = p.person(Some("Employer")).await;
    let ann = p.person(Some("Employee")).await;
    let bt = p.token(&boss, "create:task,su_edit:task").await;
    let at = p.token(&ann, EMPLOYEE_SCOPES).await;
    // Both replicas know Ann and hold her (empty) page.
    for base in [&a, &b] {
        eventually(20, "Ann in the replica's read model", || async {
            let r = p
                .http
                .post(format!("{base}/v1/task/own"))
                .bearer_auth(&at)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            (r.status() == StatusCode::OK).then_some(())
        })
        .await;
        assert!(own_titles(&p.http, base, &at).await.is_empty());
    }

    // Created through A: A answers with it at once, B within moments.
    let t = p
        .create(
            &bt,
            json!({"title": "Ship it", "type_id": 1, "assignee": ann.id}),
        )
        .await;
    let id = t["id"].as_str().unwrap().to_owned();
    let want = vec![("Ship it".to_owned(), "To Do".to_owned())];
    assert_eq!(own_titles(&p.http, &a, &at).await, want);
    eventually(5, "the new task on the other replica", || async {
        (own_titles(&p.http, &b, &at).await == want).then_some(())
    })
    .await;

    // Moved through B by Ann: B at once, A within moments.
    let r = p
        .http
        .post(format!("{b}/v1/tasks/{id}"))
        .bearer_auth(&at)
        .json(&json!({"status_id": IN_PROGRESS}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let moved = vec![("Ship it".to_owned(), "In Progress".to_owned())];
    assert_eq!(own_titles(&p.http, &b, &at).await, moved);
    eventually(5, "the move on the first replica", || async {
        (own_titles(&p.http, &a, &at).await == moved).then_some(())
    })
    .await;

    // Changed by hand in SQL (no replica knew): both follow.
    let mut c = PgConnection::establish(&p.task_db.url).unwrap();
    diesel::sql_query("UPDATE task SET title = 'Ship it today'")
        .execute(&mut c)
        .unwrap();
    let renamed = vec![("Ship it today".to_owned(), "In Progress".to_owned())];
    for base in [&a, &b] {
        eventually(5, "the hand-made change", || async {
            (own_titles(&p.http, base, &at).await == renamed).then_some(())
        })
        .await;
    }

    // Reassigned through A: gone from Ann's page on both.
    let bob = p.person(Some("Employee")).await;
    let r = p
        .post(
            &bt,
            "/v1/task/assignment",
            json!({"task_id": id, "assignee": bob.id}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    assert!(own_titles(&p.http, &a, &at).await.is_empty());
    eventually(5, "the reassignment on the other replica", || async {
        own_titles(&p.http, &b, &at).await.is_empty().then_some(())
    })
    .await;
    other.stop().await;
}
