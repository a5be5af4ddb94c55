use platform::events::Op;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn, PASSWORD};

#[tokio::test]
async fn the_admin_api_needs_an_access_token_with_the_admin_scope() {
    let p = spawn().await;
    let (name, _) = p.user_with_role(Some("Employer")).await;
    let session = p.session(&name, PASSWORD).await;
    let employer: Value = p
        .authorize(&session, "su_read:task")
        .await
        .json()
        .await
        .unwrap();
    let r = p
        .http
        .get(p.sk("/v1/admin/roles"))
        .bearer_auth(employer["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::FORBIDDEN).await;
    let r = p
        .http
        .get(p.sk("/v1/admin/roles"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED).await;
    let roles: Value = p
        .admin_call(Method::GET, "/v1/admin/roles", None)
        .await
        .json()
        .await
        .unwrap();
    let employer_role = roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "Employer")
        .unwrap();
    assert_eq!(
        employer_role["scopes"].as_array().unwrap().len(),
        6,
        "the task-management design forgot su_edit:task; we did not"
    );
}

#[tokio::test]
async fn a_grant_change_is_published_on_iam_user_role_v1() {
    let p = spawn().await;
    let (_, id) = p.user_with_role(None).await;
    let path = format!("/v1/admin/users/{id}/roles");
    assert_eq!(
        p.admin_call(Method::POST, &path, Some(json!({"role": "Employee"})))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        p.admin_call(Method::PUT, &path, Some(json!({"roles": ["Employer"]})))
            .await
            .status(),
        StatusCode::OK
    );
    let r = p
        .admin_call(Method::DELETE, &format!("{path}/Employer"), None)
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["roles"], json!([]));

    let events = p.user_role_events(&id, 3).await;
    let seen: Vec<(Op, i64, Value)> = events
        .iter()
        .map(|e| (e.op, e.version, e.after.as_ref().unwrap()["roles"].clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (Op::Create, 1, json!(["Employee"])),
            (Op::Update, 2, json!(["Employer"])),
            (Op::Update, 3, json!([]))
        ]
    );
    assert_eq!(
        events[0].after.as_ref().unwrap()["scopes"],
        json!(["edit:task", "read:accounting", "read:task"])
    );
}

#[tokio::test]
async fn a_revoked_role_stops_the_next_exchange_at_once() {
    let p = spawn().await;
    let (name, id) = p.user_with_role(Some("Employer")).await;
    let session = p.session(&name, PASSWORD).await;
    assert_eq!(
        p.authorize(&session, "su_read:task").await.status(),
        StatusCode::OK
    );
    p.admin_call(
        Method::DELETE,
        &format!("/v1/admin/users/{id}/roles/Employer"),
        None,
    )
    .await;
    assert_problem(
        p.authorize(&session, "su_read:task").await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn bad_admin_input_is_a_4xx_problem_and_changes_nothing() {
    let p = spawn().await;
    for body in [
        json!({"client_id": "x", "name": "n", "grant_types": ["client_credentials"]}),
        json!({"client_id": "evil-app", "name": "n", "public": true, "grant_types": ["authorization_code"], "redirect_uris": ["http://evil.example/cb"]}),
        json!({"client_id": "evil-app", "name": "n", "grant_types": ["implicit"]}),
        json!({"client_id": "evil-app", "name": "n", "grant_types": ["client_credentials"], "scopes": ["no:such"]}),
    ] {
        let r = p
            .admin_call(Method::POST, "/v1/admin/clients", Some(body))
            .await;
        assert_problem(r, StatusCode::BAD_REQUEST).await;
    }
    let r = p
        .admin_call(Method::GET, "/v1/admin/clients/evil-app", None)
        .await;
    assert_problem(r, StatusCode::NOT_FOUND).await;
    let r = p
        .admin_call(
            Method::POST,
            "/v1/admin/roles",
            Some(json!({"name": "Employer"})),
        )
        .await;
    assert_problem(r, StatusCode::CONFLICT).await;
    let r = p
        .admin_call(
            Method::POST,
            "/v1/admin/roles",
            Some(json!({"name": "Auditor", "permissions": ["no.such"]})),
        )
        .await;
    assert_problem(r, StatusCode::BAD_REQUEST).await;
    let roles: Value = p
        .admin_call(Method::GET, "/v1/admin/roles", None)
        .await
        .json()
        .await
        .unwrap();
    // Employee, Employer, admin and Accountant.
    assert_eq!(roles.as_array().unwrap().len(), 4);
}
